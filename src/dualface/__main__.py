import sys

try:
    # Importing torch takes seconds: a job cancelled meanwhile (SIGINT) ends quietly, like one cancelled later.
    from dualface.cli import main
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)

main()
