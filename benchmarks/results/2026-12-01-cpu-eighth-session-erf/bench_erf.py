"""Old (A&S + exp, as at commit d7fde24) against new (polynomial) kw_erf in the expert's first C++ candidate,
and eager; timeit minimum of 5 x 20 calls, six rounds. Run from the repository root:

    python benchmarks/results/2026-12-01-cpu-eighth-session-erf/bench_erf.py TASK.py ...
"""
import importlib.util, subprocess, sys, tempfile, timeit, torch
sys.path.insert(0, "src")
from kernelwright.task import load_task
from kernelwright.generate.expert.generator import ExpertGenerator
from kernelwright.generate.base import Context

OLD = subprocess.run(["git", "show", "d7fde24:src/kernelwright/generate/expert/templates/cpu.py"],
                     capture_output=True, text=True, check=True).stdout


def erf_text(src):
    i = src.index("static inline float kw_erf(float x) {", src.index("_VECTOR"))
    return src[i:src.index("}\n", i) + 2]


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m


def main():
    new_src = open("src/kernelwright/generate/expert/templates/cpu.py").read()
    old_erf, new_erf = erf_text(OLD), erf_text(new_src)
    for task_path in sys.argv[1:]:
        task = load_task(task_path)
        (draft,) = ExpertGenerator("cpu").propose(task, Context("draft", seed=0))
        ref_mod = load(task_path, "ref")
        torch.manual_seed(0)
        ref = ref_mod.Model(*ref_mod.get_init_inputs())
        inputs = ref_mod.get_inputs()
        with torch.no_grad():
            expected = ref(*inputs)
        assert new_erf in draft.source, "the draft has no vector kw_erf"
        rows = [("eager", lambda: ref(*inputs))]
        for label, src in (("new erf", draft.source), ("old erf", draft.source.replace(new_erf, old_erf))):
            path = f"{tempfile.mkdtemp()}/cand_{label.replace(' ', '_')}.py"
            open(path, "w").write(src)
            model = load(path, "c" + label.replace(" ", "_")).ModelNew(*ref_mod.get_init_inputs())
            model.load_state_dict(ref.state_dict())
            with torch.no_grad():
                err = (model(*inputs) - expected).abs().max().item()
            print(f"{task_path} {label}: max error {err:.2e}")
            rows.append((label, lambda model=model: model(*inputs)))
        with torch.no_grad():
            for rep in range(6):
                print(task_path, "  ".join(f"{label} {min(timeit.repeat(fn, number=20, repeat=5)) / 20 * 1e6:.0f} us" for label, fn in rows))


if __name__ == "__main__":
    main()
