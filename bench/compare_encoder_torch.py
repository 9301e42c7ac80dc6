#!/usr/bin/env python3
"""Decoder-LLM text encoder throughput, paradit against PyTorch (transformers) side by side.

Builds a random-weight Qwen3 text encoder of the Qwen3-0.6B shape (hidden 1024, 28 layers, 16
heads x 128, 8 KV heads, ffn 3072; vocab cut to 32000, which changes no compute) with
transformers, saves it, times model(input_ids, attention_mask, output_hidden_states=True) over a
512-token prompt with torch (f32, --threads threads), then runs
`bench_llm_families --encoder DIR --tokens 512` on the same folder, and prints both figures.
A development tool: needs the reference venv (shared notes), never run by CI.

  ~/tvenv/bin/python bench/compare_encoder_torch.py --bench build/bench/bench_llm_families
"""
import argparse
import os
import subprocess
import tempfile
import time

import torch
from transformers import Qwen3Config, Qwen3Model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="path of the bench_llm_families binary")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = Qwen3Config(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16,
                      num_key_value_heads=8, head_dim=128, intermediate_size=3072,
                      vocab_size=32000, max_position_embeddings=4096, rope_theta=1e6,
                      rms_norm_eps=1e-6, tie_word_embeddings=False)
    cfg.architectures = ["Qwen3Model"]
    model = Qwen3Model(cfg).eval()
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        ids = torch.tensor([[(i * 7919) % cfg.vocab_size for i in range(args.tokens)]])
        mask = torch.ones_like(ids)
        times = []
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, output_hidden_states=True)  # warm-up
            for _ in range(args.reps):
                t0 = time.perf_counter()
                model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                times.append(time.perf_counter() - t0)
        t = sorted(times)[len(times) // 2]
        print(f"torch {torch.__version__} (transformers, sdpa): {args.tokens} tokens in {t:.3f} s"
              f" = {args.tokens / t:.1f} tokens/s ({args.threads} threads)")
        del model
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        subprocess.run([args.bench, "--encoder", d, "--tokens", str(args.tokens), "--reps",
                        str(args.reps), "--threads", str(args.threads)], check=True, env=env)
    print(f"load average after the run: {os.getloadavg()}")


if __name__ == "__main__":
    main()
