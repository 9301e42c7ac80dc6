#!/usr/bin/env python3
"""Makes the extra video VAE references of tests/video_vae (not part of the build or the tests).

    python3 make_extra_refs.py DIFFUSERS_SRC [OUT]

DIFFUSERS_SRC is a diffusers source tree (the references were made from its GitHub source of
2026-08, the version of the shared fixtures); OUT defaults to tests/data/vae. Runs on CPU in
float32 with any torch >= 1.13 (Debian's python3-torch works), plus numpy and safetensors.

Only diffusers' two model files are used, autoencoders/autoencoder_kl_wan.py and
autoencoder_kl_hunyuan_video.py; the package around them is replaced by the small stand-ins
below (config registration, output classes, SiLU, and the HunyuanVideo mid-block Attention as
diffusers' AttnProcessor2_0 runs it: group norm, one head, additive mask, residual). The
stand-ins reproduce the shared fixtures to ~1e-6 relative.

Writes:
  wan/extended.safetensors            fixture weights; 5 latent frames of 3x5 → 17 frames of
                                      24x40; 13 frames of 24x40 → latent mean/std
  wan/variant/{config.json, diffusion_pytorch_model.safetensors, cases.safetensors}
                                      a second layout with random weights (num_res_blocks 2,
                                      decoder_base_dim 6, z_dim 4, temporal factor 2, spatial 4)
  hunyuan_video/extended.safetensors  fixture weights past diffusers' temporal tiling thresholds:
                                      6 latent frames → 21 frames; 21 frames of 16x24 → 6
"""
import json
import math
import os
import shutil
import sys
import tempfile

import torch
import torch.nn.functional as F

STUBS = {
    "__init__.py": "",
    "configuration_utils.py": '''
import functools, inspect, types
class ConfigMixin: pass
def register_to_config(init):
    sig = inspect.signature(init)
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs); bound.apply_defaults()
        params = dict(bound.arguments); params.pop("self")
        init(self, *args, **kwargs)
        object.__setattr__(self, "config", types.SimpleNamespace(**params))
    return wrapper
''',
    "loaders.py": "class FromOriginalModelMixin: pass\n",
    "utils/__init__.py": '''
import logging as _logging
class logging:
    get_logger = staticmethod(_logging.getLogger)
''',
    "utils/accelerate_utils.py": "def apply_forward_hook(fn): return fn\n",
    "models/__init__.py": "",
    "models/activations.py": '''
import torch.nn as nn
def get_activation(name):
    assert name in ("silu", "swish"), name
    return nn.SiLU()
''',
    "models/modeling_outputs.py": '''
from dataclasses import dataclass
@dataclass
class AutoencoderKLOutput:
    latent_dist: object
''',
    "models/modeling_utils.py": "import torch.nn as nn\nclass ModelMixin(nn.Module): pass\n",
    "models/attention_processor.py": '''
import torch.nn as nn, torch.nn.functional as F
class Attention(nn.Module):
    def __init__(self, query_dim, heads=1, dim_head=64, eps=1e-5, norm_num_groups=None,
                 residual_connection=False, bias=False, upcast_softmax=False,
                 _from_deprecated_attn_block=False, rescale_output_factor=1.0):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.residual_connection = heads, residual_connection
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = nn.GroupNorm(norm_num_groups, query_dim, eps=eps, affine=True)
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(query_dim, inner, bias=bias)
        self.to_v = nn.Linear(query_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim, bias=True), nn.Dropout(0.0)])
    def forward(self, hidden_states, attention_mask=None):
        residual = hidden_states
        b, s, _ = hidden_states.shape
        hidden_states = self.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        q, k, v = self.to_q(hidden_states), self.to_k(hidden_states), self.to_v(hidden_states)
        hd = q.shape[-1] // self.heads
        q, k, v = (t.view(b, -1, self.heads, hd).transpose(1, 2) for t in (q, k, v))
        mask = attention_mask.view(b, 1, s, s) if attention_mask is not None else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.to_out[1](self.to_out[0](out.transpose(1, 2).reshape(b, -1, self.heads * hd)))
        if self.residual_connection:
            out = out + residual
        return out / self.rescale_output_factor
''',
    "models/autoencoders/__init__.py": "",
    "models/autoencoders/vae.py": '''
from dataclasses import dataclass
import torch
class AutoencoderMixin: pass
@dataclass
class DecoderOutput:
    sample: torch.Tensor
class DiagonalGaussianDistribution:
    def __init__(self, parameters):
        self.mean, self.logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(self.logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
''',
}
MODEL_FILES = ["autoencoder_kl_wan.py", "autoencoder_kl_hunyuan_video.py"]


def import_models(diffusers_src):
    root = tempfile.mkdtemp(prefix="paradit_refs_")
    pkg = os.path.join(root, "diffusers")
    for rel, text in STUBS.items():
        path = os.path.join(pkg, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    src = os.path.join(diffusers_src, "src", "diffusers", "models", "autoencoders")
    if not os.path.isdir(src):
        src = os.path.join(diffusers_src, "models", "autoencoders")
    for name in MODEL_FILES:
        shutil.copy(os.path.join(src, name), os.path.join(pkg, "models", "autoencoders", name))
    sys.path.insert(0, root)
    if not hasattr(F, "scaled_dot_product_attention"):  # torch < 2.0
        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
            s = scale if scale is not None else 1.0 / math.sqrt(q.size(-1))
            w = torch.matmul(q, k.transpose(-2, -1)) * s
            if attn_mask is not None:
                w = w + attn_mask
            return torch.matmul(torch.softmax(w, dim=-1), v)
        F.scaled_dot_product_attention = sdpa
    from diffusers.models.autoencoders.autoencoder_kl_hunyuan_video import AutoencoderKLHunyuanVideo
    from diffusers.models.autoencoders.autoencoder_kl_wan import AutoencoderKLWan
    return AutoencoderKLWan, AutoencoderKLHunyuanVideo


def main():
    from safetensors.torch import load_file, save_file

    diffusers_src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "vae")
    Wan, Hunyuan = import_models(diffusers_src)
    torch.set_grad_enabled(False)

    def build(cls, cfg, sd=None):
        m = cls(**cfg).eval()
        if sd is not None:
            missing, unexpected = m.load_state_dict(sd, strict=False)
            assert not missing and not unexpected, (missing, unexpected)
        return m

    def fixture(name):
        d = os.path.join(out, name)
        with open(os.path.join(d, "config.json")) as f:
            cfg = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
        return d, cfg, load_file(os.path.join(d, "diffusion_pytorch_model.safetensors"))

    def randomize(m, g):
        # As the shared fixtures: matrices randn/sqrt(fan_in), biases 0.05·randn, scales 1 + 0.1·randn.
        sd = {}
        for n, p in m.state_dict().items():
            if n.endswith("gamma"):
                v = (1 + 0.1 * torch.randn(p.shape[0], generator=g)).reshape(p.shape)
            elif p.dim() == 1:
                v = 0.05 * torch.randn(p.shape, generator=g)
            else:
                v = torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5
            sd[n] = v.contiguous()
        m.load_state_dict(sd)
        return sd

    def run(m, z, x):
        post = m.encode(x).latent_dist
        return {"latents": z, "decoded": m.decode(z).sample.contiguous(), "video": x,
                "latent_mean": post.mean.contiguous(), "latent_std": post.std.contiguous()}

    g = torch.Generator().manual_seed(7001)
    d, cfg, sd = fixture("wan")
    wan = build(Wan, cfg, sd)
    z = torch.randn(1, 16, 5, 3, 5, generator=g)
    x = torch.rand(1, 3, 13, 24, 40, generator=g) * 2 - 1
    save_file(run(wan, z, x), os.path.join(d, "extended.safetensors"))

    vd = os.path.join(out, "wan", "variant")
    os.makedirs(vd, exist_ok=True)
    vcfg = dict(base_dim=4, decoder_base_dim=6, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=2,
                attn_scales=[], temperal_downsample=[True, False], dropout=0.0,
                latents_mean=[0.1, -0.2, 0.3, -0.4], latents_std=[1.5, 0.5, 2.0, 1.0],
                is_residual=False, in_channels=3, out_channels=3, patch_size=None,
                scale_factor_temporal=2, scale_factor_spatial=4)
    var = build(Wan, vcfg)
    save_file(randomize(var, g), os.path.join(vd, "diffusion_pytorch_model.safetensors"))
    with open(os.path.join(vd, "config.json"), "w") as f:
        json.dump(dict(_class_name="AutoencoderKLWan", _diffusers_version="0.40.0.dev0", **vcfg),
                  f, indent=2)
    z = torch.randn(1, 4, 3, 4, 6, generator=g)
    x = torch.rand(1, 3, 9, 16, 24, generator=g) * 2 - 1
    save_file(run(var, z, x), os.path.join(vd, "cases.safetensors"))

    d, cfg, sd = fixture("hunyuan_video")
    hy = build(Hunyuan, cfg, sd)
    z = torch.randn(1, 16, 6, 4, 4, generator=g)
    x = torch.rand(1, 3, 21, 16, 24, generator=g) * 2 - 1
    save_file(run(hy, z, x), os.path.join(d, "extended.safetensors"))
    print("wrote the extra references under", os.path.abspath(out))


if __name__ == "__main__":
    main()
