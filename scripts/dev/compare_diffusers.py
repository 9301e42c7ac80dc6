#!/usr/bin/env python3
"""Development check, NOT used by CI or the build: paradit's `make-model --pipeline` folders run
through diffusers and through `paradit generate`, from the same prompt text and initial latents,
must end in the same latents.

For each arch this script
  1. makes a tiny random pipeline:  paradit make-model --arch A --preset tiny --pipeline DIR
     (with --tokenizer_files, its tokenizer folders are then cut down to tokenizer.json +
     tokenizer_config.json, as transformers 5 saves them, or to the slow files: spiece.model /
     vocab.json + merges.txt with the configs);
  2. loads it with diffusers' DiffusionPipeline.from_pretrained (float32, CPU) and runs it from
     the prompt text with fixed initial latents and output_type="latent" (DiT, which has no latent
     output, is read at its VAE decode);
  3. runs  paradit generate --model DIR --prompt ... --latents L --output_type latent  with the
     same latents (saved as safetensors, tensor "latents");
  4. prints, over the final latents, max |diffusers|, max |paradit - diffusers|, the max relative
     error max |paradit - diffusers| / max |diffusers| (the one held to --tolerance) and the
     relative L2 error ||paradit - diffusers|| / ||diffusers||.

It needs torch, diffusers, transformers, sentencepiece and protobuf (pip), and a built paradit:
  python3 scripts/dev/compare_diffusers.py --paradit build/paradit [--archs flux sd3 ...]
Exit status 1 when an arch fails to run or exceeds --tolerance.
"""

import argparse
import os
import subprocess
import sys
import tempfile

ARCHS = ["flux", "flux-schnell", "sd3", "sd35", "pixart-sigma", "pixart-alpha", "dit"]
PROMPT = "a photo of a cat wearing sunglasses, café 😀"
# DiT maps the prompt through id2label (make-model writes "a cat, cat, tabby" for class 0).
DIT_PROMPT = "cat"
GUIDANCE = {"flux": 3.5, "flux-schnell": 3.5, "sd3": 7.0, "sd35": 7.0,
            "pixart-sigma": 4.5, "pixart-alpha": 4.5, "dit": 4.0}


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}")
    return r.stdout


def initial_latents(pipe, arch, height, width, generator):
    import torch
    t = pipe.transformer.config
    if arch.startswith("flux"):
        # Packed: (B, (h/2)·(w/2), 4·C) with h, w the latent size.
        h = 2 * (height // (pipe.vae_scale_factor * 2))
        w = 2 * (width // (pipe.vae_scale_factor * 2))
        shape = (1, (h // 2) * (w // 2), t.in_channels)
    elif arch == "dit":
        shape = (1, t.in_channels, t.sample_size, t.sample_size)
    else:
        f = pipe.vae_scale_factor
        shape = (1, t.in_channels, height // f, width // f)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def diffusers_latents(pipe, arch, latents, height, width, steps):
    import torch
    g = GUIDANCE[arch]
    if arch == "dit":
        import diffusers.pipelines.dit.pipeline_dit as dit_module
        captured = {}
        original_randn, original_decode = dit_module.randn_tensor, pipe.vae.decode

        def fixed_randn(shape, **kwargs):
            assert tuple(shape) == tuple(latents.shape), (shape, latents.shape)
            return latents.clone()

        def capture_decode(z, *args, **kwargs):
            captured["latents"] = z * pipe.vae.config.scaling_factor  # the pipeline divided
            return original_decode(z, *args, **kwargs)

        dit_module.randn_tensor, pipe.vae.decode = fixed_randn, capture_decode
        try:
            pipe(class_labels=pipe.get_label_ids([DIT_PROMPT]), guidance_scale=g,
                 num_inference_steps=steps, output_type="np")
        finally:
            dit_module.randn_tensor, pipe.vae.decode = original_randn, original_decode
        return captured["latents"]
    kwargs = dict(prompt=PROMPT, height=height, width=width, num_inference_steps=steps,
                  guidance_scale=g, latents=latents.clone(), output_type="latent")
    if arch.startswith("pixart"):
        kwargs.update(use_resolution_binning=False, clean_caption=False)
    with torch.no_grad():
        return pipe(**kwargs).images


SLOW_FILES = {"spiece.model", "vocab.json", "merges.txt", "tokenizer_config.json",
              "special_tokens_map.json"}


def cut_tokenizer_files(folder, form):
    """Leaves only the files of `form` ("json": tokenizer.json + tokenizer_config.json; "slow":
    SLOW_FILES) in every tokenizer folder of the pipeline. (Without tokenizer_config.json,
    transformers has no model_max_length and the CLIP pipelines cannot call the tokenizer.)"""
    for name in os.listdir(folder):
        if not name.startswith("tokenizer"):
            continue
        for f in os.listdir(os.path.join(folder, name)):
            keep = (f in ("tokenizer.json", "tokenizer_config.json") if form == "json"
                    else f in SLOW_FILES)
            if not keep:
                os.remove(os.path.join(folder, name, f))


def compare(arch, paradit, workdir, height, width, steps, seed, tokenizer_files):
    import torch
    from diffusers import DiffusionPipeline
    from safetensors.torch import load_file, save_file

    folder = os.path.join(workdir, arch)
    run([paradit, "make-model", "--arch", arch, "--preset", "tiny", "--seed", str(seed),
         "--pipeline", folder])
    if tokenizer_files != "all":
        cut_tokenizer_files(folder, tokenizer_files)
    pipe = DiffusionPipeline.from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    if arch == "dit":  # DiT's image size is fixed: the transformer's sample_size × the VAE's scale
        vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        height = width = pipe.transformer.config.sample_size * vae_scale
    latents = initial_latents(pipe, arch, height, width, torch.Generator().manual_seed(seed))
    want = diffusers_latents(pipe, arch, latents, height, width, steps).float()

    latents_path = os.path.join(workdir, arch + "_latents.safetensors")
    out_path = os.path.join(workdir, arch + "_out.safetensors")
    save_file({"latents": latents.contiguous()}, latents_path)
    run([paradit, "generate", "--model", folder,
         "--prompt", DIT_PROMPT if arch == "dit" else PROMPT,
         "--height", str(height), "--width", str(width), "--num_inference_steps", str(steps),
         "--guidance_scale", str(GUIDANCE[arch]), "--latents", latents_path,
         "--output_type", "latent", "--output", out_path])
    got = load_file(out_path)["latents"].float()
    if tuple(got.shape) != tuple(want.shape):
        raise RuntimeError(f"shape: paradit {tuple(got.shape)}, diffusers {tuple(want.shape)}")
    abs_err = (got - want).abs().max().item()
    rel_err = abs_err / max(want.abs().max().item(), 1e-30)
    l2_err = ((got - want).norm() / max(want.norm().item(), 1e-30)).item()
    return tuple(want.shape), want.abs().max().item(), abs_err, rel_err, l2_err


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paradit", default=os.path.join(here, "..", "..", "build", "paradit"))
    ap.add_argument("--archs", nargs="+", default=ARCHS, choices=ARCHS)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--tokenizer_files", choices=["all", "json", "slow"], default="all",
                    help="tokenizer folders as made (all), tokenizer.json + config, or slow files")
    ap.add_argument("--workdir", default=None, help="keep the pipelines here (default: a temp dir)")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(1)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        workdir = a.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        print(f"{'arch':<14} {'latents shape':<16} {'max |ref|':>10} {'max abs err':>12} "
              f"{'max rel err':>12} {'rel L2 err':>11}")
        for arch in a.archs:
            try:
                shape, ref_max, abs_err, rel_err, l2_err = compare(arch, a.paradit, workdir, a.height, a.width,
                                                  a.steps, a.seed, a.tokenizer_files)
            except Exception as e:  # noqa: BLE001 - report and go on with the next arch
                ok = False
                print(f"{arch:<14} FAILED: {str(e).strip().splitlines()[-1] if str(e).strip() else e!r}")
                continue
            flag = "" if rel_err <= a.tolerance else "  (over tolerance)"
            ok = ok and rel_err <= a.tolerance
            print(f"{arch:<14} {str(list(shape)):<16} {ref_max:>10.3g} {abs_err:>12.3e} "
                  f"{rel_err:>12.3e} {l2_err:>11.3e}{flag}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
