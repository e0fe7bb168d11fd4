"""Ninth session: kw_step's score and online-softmax steps became the helpers kw_scores and kw_online (commit
0fa8963). The flash template's first points rendered by the module before (triton_attention_before.py, from
git) and after, on the suite's flash tasks, timed alternately (bf16 inputs, as the bench draws them)."""
import sys
sys.path.insert(0, ".bench-state")
import importlib.util
from explore19 import BF16Case
from kernelwright.generate.expert.templates import triton_attention as after

spec = importlib.util.spec_from_file_location("before", ".bench-state/triton_attention_before.py")
before = importlib.util.module_from_spec(spec); spec.loader.exec_module(before)


def main():
    for task in ("attention_llama3_causal", "attention_gpt2xl_sdpa"):
        c = BF16Case(task)
        for rnd in range(2):
            for name, module in (("before", before), ("after", after)):
                t = module.FlashAttentionTemplate()
                space = t.space(c.analysis)
                c.time_source(f"r{rnd} {name}", t.render(c.analysis, {k: v[0] for k, v in space.items()}))


if __name__ == "__main__":
    main()
