"""Training checkpoints: bit-exact resume, atomic saves under SIGKILL, pruning, fallback and error messages."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

from omg_core.errors import ConfigError, OMGError
from omg_core.train.checkpoint import (
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from omg_core.train.rng import capture_rng_state, restore_rng_state

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ in-process model
class TinyNet(nn.Module):
    """Linear + LayerNorm + BatchNorm (buffers) + dropout, behind a frozen layer (left out of checkpoints)."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(5, 5)
        self.frozen.requires_grad_(False)
        self.inp = nn.Linear(5, 12)
        self.norm = nn.LayerNorm(12)
        self.bn = nn.BatchNorm1d(12)
        self.drop = nn.Dropout(0.25)
        self.out = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x 5 -> B x 2
        return self.out(self.drop(self.bn(self.norm(self.inp(self.frozen(x))).relu())))


def build(seed: int = 0) -> tuple[TinyNet, torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(seed)
    model = TinyNet()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 4))
    return model, optimizer, scheduler


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_step(model: TinyNet, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
               noise: torch.Generator, targets: np.random.Generator) -> torch.Tensor:
    """A step that draws from every generator: torch global (inputs, dropout), an owned torch.Generator, NumPy
    global and owned generators, and Python's random."""
    x = torch.randn(6, 5) + 0.1 * torch.randn(6, 5, generator=noise)
    y = torch.from_numpy(targets.standard_normal((6, 2)).astype(np.float32)) + float(np.random.rand())
    loss = ((model(x) - y) ** 2).mean() * (1.0 + random.gauss(0.0, 0.1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.detach()


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    return {f"{index}.{name}": value for index, state in optimizer.state_dict()["state"].items()
            for name, value in state.items()}


def test_resume_continues_bit_exactly_with_every_rng(tmp_path: Path) -> None:
    total, cut = 10, 4
    model, optimizer, scheduler = build()
    seed_everything(3)
    noise, targets = torch.Generator().manual_seed(5), np.random.default_rng(7)
    straight = [train_step(model, optimizer, scheduler, noise, targets) for _ in range(total)]

    model_b, optimizer_b, scheduler_b = build()
    seed_everything(3)
    noise_b, targets_b = torch.Generator().manual_seed(5), np.random.default_rng(7)
    for _ in range(cut):
        train_step(model_b, optimizer_b, scheduler_b, noise_b, targets_b)
    saved = save_checkpoint(tmp_path, cut, model_b, optimizer_b, scheduler_b, {"position": cut},
                            extra_generators={"noise": noise_b, "targets": targets_b},
                            metrics={"loss": [1.5, float("nan")]}, config_text="steps: 10\n")

    # a fresh process-like start: other RNG states, other trainable weights and buffers (the frozen layer is rebuilt
    # by the same seeded initialisation, as the trainer does)
    resumed, optimizer_c, scheduler_c = build()
    with torch.no_grad():
        for key, value in resumed.state_dict().items():
            if value.is_floating_point() and not key.startswith("frozen."):
                value.add_(1.0)
    seed_everything(99)
    noise_c, targets_c = torch.Generator().manual_seed(1), np.random.default_rng(1)
    state = load_checkpoint(tmp_path, resumed, optimizer_c, scheduler_c,
                            generators={"noise": noise_c, "targets": targets_c})
    assert (state.step, state.sampler_state, state.path) == (cut, {"position": cut}, saved)
    assert state.config_text == "steps: 10\n" and len(state.config_hash or "") == 64
    assert state.metrics["loss"][0] == 1.5 and np.isnan(state.metrics["loss"][1])
    assert all(v.device.type == "cpu" for v in optimizer_tensors(optimizer_c).values())
    continued = [train_step(resumed, optimizer_c, scheduler_c, noise_c, targets_c) for _ in range(total - cut)]

    for mine, theirs in zip(continued, straight[cut:]):
        assert torch.equal(mine, theirs)
    assert_same_tensors(resumed.state_dict(), model.state_dict())  # parameters and BatchNorm buffers
    assert_same_tensors(optimizer_tensors(optimizer_c), optimizer_tensors(optimizer))
    assert scheduler_c.get_last_lr() == scheduler.get_last_lr()
    assert optimizer_c.param_groups[0]["betas"] == (0.9, 0.999)


# ----------------------------------------------------------------------------------------- SIGKILL, in a subprocess
# A training script with one trick: `serve` imports torch once and forks one "life" per command, so a dozen kills
# cost milliseconds each. A life resumes from the newest checkpoint, trains to TOTAL saving every EVERY steps, and
# stops dead (sleeps until killed) at the N-th fsync / rmtree / mid-step marker it was told to stop at, so the kills
# land at every boundary of a save; "random" lives are killed after a random delay instead.
HELPER = r'''
import os, random, shutil, sys, time, traceback
import numpy as np
import torch
from torch import nn
from omg_core.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

TOTAL, EVERY, KEEP = 16, 2, 2


def warmup(step):
    return min(1.0, (step + 1) / 5)


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Dropout(0.3), nn.Linear(16, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, warmup)


def seed_everything(seed):
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)


def train_step(model, optimizer, scheduler, during=lambda: None):
    x = torch.randn(8, 6) * (1.0 + random.random())
    target = torch.from_numpy(np.random.standard_normal((8, 3)).astype(np.float32))
    loss = ((model(x) - target) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    during()
    optimizer.step()
    scheduler.step()
    return loss.detach()


def start(directory):
    model, optimizer, scheduler = build()
    seed_everything(1)
    found = latest_checkpoint(directory)
    step = 0 if found is None else load_checkpoint(found, model, optimizer, scheduler).step
    return model, optimizer, scheduler, step


def life(directory, stop_kind, stop_at, slow):
    counts = {}

    def mark(kind):
        counts[kind] = counts.get(kind, 0) + 1
        os.write(1, f"{kind} {counts[kind]}\n".encode())
        if kind == stop_kind and counts[kind] == stop_at:
            os.write(1, b"waiting\n")
            time.sleep(600)
        time.sleep(slow)

    real_fsync, real_rmtree = os.fsync, shutil.rmtree
    os.fsync = lambda fd: (mark("fsync"), real_fsync(fd))[1]
    shutil.rmtree = lambda *args, **kwargs: (mark("rmtree"), real_rmtree(*args, **kwargs))[1]
    model, optimizer, scheduler, step = start(directory)
    while step < TOTAL:
        train_step(model, optimizer, scheduler, lambda: mark("step"))
        step += 1
        if step % EVERY == 0:
            save_checkpoint(directory, step, model, optimizer, scheduler, {"position": step}, keep_last=KEEP)
    os.write(1, b"done\n")


def serve():
    torch.set_num_threads(1)
    # import what the first optimizer and save import lazily (torch._dynamo: ~2 s) once, before forking
    import tempfile
    model, optimizer, scheduler = build()
    train_step(model, optimizer, scheduler)
    with tempfile.TemporaryDirectory() as warm:
        save_checkpoint(warm, 1, model, optimizer, scheduler, {})
        load_checkpoint(warm, model, optimizer, scheduler)
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        directory, kind, at, slow = line.split()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                life(directory, kind, int(at), float(slow))
                code = 0
            except BaseException:
                traceback.print_exc()
            sys.stderr.flush()
            os._exit(code)
        # one write() per line: the forked life writes to the same pipe, and print() may split a line in two
        os.write(1, f"pid {pid}\n".encode())
        os.write(1, f"exit {os.waitpid(pid, 0)[1]}\n".encode())


if __name__ == "__main__":
    serve()
'''


@pytest.fixture
def helper(tmp_path: Path) -> Iterator[ModuleType]:
    path = tmp_path / "checkpoint_helper.py"
    path.write_text(HELPER)
    spec = importlib.util.spec_from_file_location("checkpoint_helper", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server: the reference must run the same kernels
    yield module
    torch.set_num_threads(threads)


class Server:
    """The helper's fork server, read line by line on a thread so no read can hang the test."""

    def __init__(self, script: Path, stderr: Path) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.stderr_path = stderr
        self.process = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=open(stderr, "w"), text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def next_line(self) -> str:
        try:
            return self.lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"the helper went silent; stderr: {self.stderr_path.read_text()[-2000:]}") from None

    def life(self, directory: Path, stop: str, at: float, slow: float = 0.0) -> tuple[int, list[str]]:
        """Runs one life; returns its exit status and its markers. stop "random": killed ``at`` seconds in."""
        assert self.process.stdin is not None
        kind, stop_at = (stop, int(at)) if stop != "random" else ("none", 0)
        self.process.stdin.write(f"{directory} {kind} {stop_at} {slow}\n")
        self.process.stdin.flush()
        pid, markers, began = None, [], time.monotonic()
        while True:
            if stop == "random" and pid is not None:
                try:
                    line = self.lines.get(timeout=max(began + at - time.monotonic(), 0.0))
                except queue.Empty:
                    os.kill(pid, signal.SIGKILL)
                    stop = "killed"
                    continue
            else:
                line = self.next_line()
            if line.startswith("pid "):
                pid = int(line.split()[1])
            elif line.startswith("exit "):
                return int(line.split()[1]), markers
            elif line == "waiting":
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
            else:
                markers.append(line)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def test_sigkill_at_any_moment_leaves_the_previous_or_the_new_checkpoint(tmp_path: Path, helper: ModuleType) -> None:
    # the uninterrupted run: weights and optimizer state after every step
    model, optimizer, scheduler = helper.build()
    helper.seed_everything(1)
    reference = {0: (copy.deepcopy(model.state_dict()), {})}
    for step in range(1, helper.TOTAL + 1):
        helper.train_step(model, optimizer, scheduler)
        reference[step] = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer_tensors(optimizer)))

    def check_every_visible_checkpoint(directory: Path) -> int:
        """Each step_* folder a reader can see loads and equals the uninterrupted run at its step; returns the step
        latest_checkpoint picks (0: none)."""
        for folder in sorted(directory.glob("step_*")):
            fresh, fresh_optimizer, _ = helper.build()
            state = load_checkpoint(folder, fresh, fresh_optimizer)
            assert_same_tensors(fresh.state_dict(), reference[state.step][0])
            assert_same_tensors(optimizer_tensors(fresh_optimizer), reference[state.step][1])
            assert state.sampler_state == {"position": state.step}
        found = latest_checkpoint(directory)
        return 0 if found is None else load_checkpoint(found, *helper.build()[:1]).step

    # per save: 3 files, the partial folder, the rename, the pointer file, the pointer rename (7 fsyncs); then pruning
    plans: list[tuple[str, float]] = [("fsync", k) for k in (1, 3, 4, 5, 6, 7)]
    plans += [("step", 3), ("fsync", 11), ("fsync", 12), ("rmtree", 1), ("rmtree", 2)]
    chance = random.Random(13)
    plans += [("random", chance.uniform(0.0, 0.2)) for _ in range(3)]

    directory = tmp_path / "checkpoints"
    script = tmp_path / "checkpoint_helper.py"
    server = Server(script, tmp_path / "helper_stderr.txt")
    try:
        latest = 0
        for stop, at in plans:
            status, markers = server.life(directory, stop, at, slow=0.002 if stop == "random" else 0.0)
            where = f"kill at {stop} {at} (markers {markers[-3:]})"
            assert status in (signal.SIGKILL, 0), f"{where}: exit status {status}, {server.stderr_path.read_text()}"
            if stop != "random":
                assert status == signal.SIGKILL and markers[-1] == f"{stop} {int(at)}", where
            found = check_every_visible_checkpoint(directory) if directory.exists() else 0
            assert found >= latest, where  # never back to an older checkpoint than the one it started from
            latest = found
            if stop == "step":
                # resuming in this process from what the kill left reaches the uninterrupted weights
                resumed, resumed_optimizer, resumed_scheduler = helper.build()
                state = load_checkpoint(directory, resumed, resumed_optimizer, resumed_scheduler)
                assert state.step > 0
                for _ in range(state.step, helper.TOTAL):
                    helper.train_step(resumed, resumed_optimizer, resumed_scheduler)
                assert_same_tensors(resumed.state_dict(), reference[helper.TOTAL][0])
        status, markers = server.life(directory, "none", 0)
        assert status == 0 and markers and markers[-1] == "done", server.stderr_path.read_text()
    finally:
        server.close()
    assert check_every_visible_checkpoint(directory) == helper.TOTAL
    final, final_optimizer, final_scheduler = helper.build()
    state = load_checkpoint(directory, final, final_optimizer, final_scheduler)
    assert_same_tensors(final.state_dict(), reference[helper.TOTAL][0])
    # the next save (here: the same step again, replacing it) removes whatever the kills left and keeps KEEP
    save_checkpoint(directory, state.step, final, final_optimizer, final_scheduler, state.sampler_state,
                    keep_last=helper.KEEP)
    assert sorted(entry.name for entry in directory.iterdir()) == ["latest", "step_00000014", "step_00000016"]


# --------------------------------------------------------------------------------------- pruning, fallback, errors
def save_steps(directory: Path, steps: list[int], keep_last: int = 3) -> TinyNet:
    model, optimizer, scheduler = build()
    for step in steps:
        with torch.no_grad():
            model.out.bias.fill_(float(step))  # tells the checkpoints apart
        save_checkpoint(directory, step, model, optimizer, scheduler, {"position": step}, keep_last=keep_last)
    return model


def test_keep_last_keeps_the_newest_and_rejects_zero(tmp_path: Path) -> None:
    save_steps(tmp_path, [1, 2, 3, 4, 5], keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000004", "step_00000005"]
    save_steps(tmp_path, [6], keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000006"]
    # saving an existing step replaces it (a resumed run reaching a step the killed run had saved)
    save_steps(tmp_path, [6], keep_last=1)
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000006"
    with pytest.raises(ConfigError, match="keep_last must be an integer >= 1"):
        save_steps(tmp_path, [7], keep_last=0)
    assert not (tmp_path / "step_00000007").exists()


def test_broken_latest_pointer_falls_back_to_the_newest_complete(tmp_path: Path) -> None:
    save_steps(tmp_path, [1, 2, 3])
    assert (tmp_path / "latest").read_text() == "step_00000003\n"
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000003"

    (tmp_path / "latest").write_text("../../elsewhere\n")
    with pytest.warns(RuntimeWarning, match="not a complete checkpoint; using step_00000003"):
        assert latest_checkpoint(tmp_path) == tmp_path / "step_00000003"

    (tmp_path / "latest").write_text("step_00000003\n")
    (tmp_path / "step_00000003" / MODEL_FILE).unlink()
    with pytest.warns(RuntimeWarning, match="using step_00000002"):
        assert latest_checkpoint(tmp_path) == tmp_path / "step_00000002"
    state_file = tmp_path / "step_00000002" / STATE_FILE
    state_file.write_text(state_file.read_text()[:100])  # truncated
    with pytest.warns(RuntimeWarning, match="using step_00000001"):
        assert latest_checkpoint(tmp_path) == tmp_path / "step_00000001"
    with open(tmp_path / "step_00000001" / OPTIMIZER_FILE, "ab") as file:
        file.write(b"\0")  # a size that does not match state.json

    with pytest.raises(OMGError) as error:
        load_checkpoint(tmp_path / "step_00000003", build()[0])
    assert "step_00000003/model.safetensors is missing" in str(error.value) and "\n" not in str(error.value)
    (tmp_path / "latest").unlink()
    assert latest_checkpoint(tmp_path) is None

    # with a pointer gone, the newest complete step folder is used, without a warning
    save_steps(tmp_path, [4])
    (tmp_path / "latest").unlink()
    model = build()[0]
    assert load_checkpoint(tmp_path, model).step == 4 and float(model.out.bias.detach()[0]) == 4.0


def test_partial_folders_are_ignored_then_removed_by_the_next_save(tmp_path: Path) -> None:
    partial = tmp_path / ".step_00000002.partial-k1ll3d"
    partial.mkdir()
    (partial / MODEL_FILE).write_bytes(b"half a file")
    assert latest_checkpoint(tmp_path) is None
    with pytest.raises(OMGError) as error:
        load_checkpoint(tmp_path, build()[0])
    message = str(error.value)
    assert message == (f"--resume {tmp_path}: no complete checkpoint in {tmp_path} (found only partial folders: "
                       ".step_00000002.partial-k1ll3d); start without --resume")
    assert latest_checkpoint(tmp_path / "absent") is None
    with pytest.raises(OMGError, match="does not exist"):
        load_checkpoint(tmp_path / "absent", build()[0])

    save_steps(tmp_path, [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000001"]

    # a kill between moving an older copy of a step aside and renaming its replacement in: the copy is hidden (the
    # pointer falls back), and the next save puts it back
    save_steps(tmp_path, [2])
    (tmp_path / "step_00000002").rename(tmp_path / ".step_00000002.old-1-2")
    with pytest.warns(RuntimeWarning, match="using step_00000001"):
        assert latest_checkpoint(tmp_path) == tmp_path / "step_00000001"
    save_steps(tmp_path, [3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000001", "step_00000002",
                                                          "step_00000003"]
    model = build()[0]
    assert load_checkpoint(tmp_path / "step_00000002", model).step == 2 and float(model.out.bias.detach()[0]) == 2.0


def test_model_mismatch_error_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    save_steps(tmp_path, [1])

    class Renamed(TinyNet):
        def __init__(self) -> None:
            super().__init__()
            self.head = self.out
            del self.out

    with pytest.raises(OMGError) as error:
        load_checkpoint(tmp_path, Renamed())
    message = str(error.value)
    assert "\n" not in message and f"{tmp_path / 'step_00000001' / MODEL_FILE} does not fit the model" in message
    assert "missing head.weight, head.bias; unexpected out.bias, out.weight" in message

    wider = TinyNet()
    wider.out = nn.Linear(12, 3)
    with pytest.raises(OMGError, match=r"'out.weight' is \(2, 12\) torch.float32 in the checkpoint but \(3, 12\)"):
        load_checkpoint(tmp_path, wider)

    # frozen parameters are not in the checkpoint: a model that trains them now keeps its own (initial) values
    thawed = TinyNet()
    thawed.frozen.requires_grad_(True)
    before = thawed.frozen.weight.clone()
    assert load_checkpoint(tmp_path, thawed).step == 1 and torch.equal(thawed.frozen.weight, before)


def test_tied_weights_and_frozen_parameters_round_trip_as_safetensors_and_json(tmp_path: Path) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encode = nn.Linear(4, 4, bias=False)
            self.decode = nn.Linear(4, 4, bias=False)
            self.decode.weight = self.encode.weight  # tied: one storage under two keys
            self.register_buffer("window", torch.arange(10.0)[2:6])  # a slice of a larger storage
            self.fixed = nn.Parameter(torch.randn(3), requires_grad=False)

    torch.manual_seed(0)
    model = Tied()
    optimizer = torch.optim.AdamW([model.encode.weight], lr=1e-3, weight_decay=0.05)
    saved = save_checkpoint(tmp_path, 0, model, optimizer, None, {}, include_frozen=True)  # before any step

    assert sorted(p.name for p in saved.iterdir()) == [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE]
    state = json.loads((saved / STATE_FILE).read_text())
    assert state["model"] == {"keys": ["fixed", "window", "encode.weight", "decode.weight"], "skipped_frozen": []}
    for file in (MODEL_FILE, OPTIMIZER_FILE):  # safetensors: an 8-byte header length, then a JSON header
        raw = (saved / file).read_bytes()
        json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])

    torch.manual_seed(1)
    fresh = Tied()
    fresh_optimizer = torch.optim.AdamW([fresh.encode.weight], lr=1e-3, weight_decay=0.05)
    loaded = load_checkpoint(saved, fresh, fresh_optimizer)
    assert_same_tensors(fresh.state_dict(), model.state_dict())
    assert fresh.decode.weight is fresh.encode.weight
    assert loaded.scheduler_state is None and fresh_optimizer.state_dict()["state"] == {}
    with pytest.raises(OMGError, match="holds no scheduler state"):
        load_checkpoint(saved, fresh, fresh_optimizer, torch.optim.lr_scheduler.LambdaLR(fresh_optimizer, abs))


def test_rng_state_round_trips_through_json() -> None:
    generators = {
        "torch": torch.Generator().manual_seed(3),
        "pcg": np.random.default_rng(4),
        "mt": np.random.Generator(np.random.MT19937(5)),
        "python": random.Random(6),
    }

    def draw() -> list[float]:
        return [random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.standard_normal()),
                float(torch.rand(1)), float(torch.rand(1, generator=generators["torch"])),
                float(generators["pcg"].random()), float(generators["mt"].random()), generators["python"].random()]

    random.gauss(0, 1)  # leaves a cached second gaussian in the state
    state = json.loads(json.dumps(capture_rng_state(generators)))
    first = draw()
    restore_rng_state(state, generators)
    assert draw() == first
    with pytest.raises(TypeError, match="bit generator MT19937 but uses PCG64"):
        restore_rng_state(state, {"mt": np.random.default_rng(0)})
    with pytest.raises(KeyError, match="no saved state for generator"):
        restore_rng_state(state, {"other": torch.Generator()})
