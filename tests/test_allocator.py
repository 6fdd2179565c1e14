import subprocess
import sys

import pytest

from dualface.allocator import keep_freed_memory

# Training steps of a small model; prints whether the setting took and the page faults of a step.
STEPS = """
import resource, sys, torch
from dualface.allocator import keep_freed_memory
from dualface.model import Autoencoder, ModelConfig
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.manual_seed(0)
model = Autoencoder(ModelConfig.from_preset("lite"), ["a", "b"])
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
faces = {name: torch.rand(16, 3, 64, 64) for name in "ab"}

def step():
    loss = sum(out.rgb.mean() for out in model(faces).values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(kept, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


def faults_per_step(mode: str) -> tuple[bool, int]:
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}  # and none of the caller's MALLOC_* settings
    run = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, env=env, check=True)
    kept, faults = run.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_training_steps_stop_faulting_in_the_memory_they_freed():
    kept, with_it = faults_per_step("keep")
    if not kept:
        pytest.skip("not glibc")
    _, without = faults_per_step("default")
    assert without > 1_000  # glibc gave the step's large blocks back to the kernel, and took them again
    assert with_it < without / 10


def test_the_users_own_allocator_settings_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert keep_freed_memory() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")
    assert keep_freed_memory() is False
