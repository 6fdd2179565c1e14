from dualface.cli import main

main()
