"""``info``, ``bench`` and ``pack``: what a model is (parameter counts), how fast it runs here, and
its networks packed to carry a run to another machine."""

from __future__ import annotations

import json
from pathlib import Path

from .common import add_threads_argument, user_errors

__all__ = ["add_bench", "add_info", "add_pack"]


def add_info(sub) -> None:
    p = sub.add_parser("info", help="parameter counts of a preset or checkpoint")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", default="paper", help="paper, demo, demo-wide or tiny (default: paper)")
    src.add_argument("--checkpoint", type=Path, help="a .safetensors checkpoint")
    p.add_argument("--resolution", type=int, help="override the preset's resolution")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=user_errors(_run_info))


def _run_info(args) -> int:
    from ..model import SeeGaan, preset_config, read_metadata
    from ..model.config import ModelConfig

    if args.checkpoint:
        meta = read_metadata(args.checkpoint)
        config = ModelConfig.from_dict(meta["config"])
    else:
        meta, config = {}, preset_config(args.preset, args.resolution)
    counts = SeeGaan(config, with_training_networks=False).parameter_counts()
    out = {**counts, "preset": config.preset, "resolution": config.resolution, "w_dim": config.w_dim,
           "step": meta.get("training_state", {}).get("step", meta.get("step"))}
    if args.json:
        print(json.dumps(out))
    else:
        trained = f", trained {out['step']:,} steps" if out["step"] is not None else ""
        print(f"preset {config.preset}, {config.resolution} px, w {config.w_dim}-d{trained}")
        for name in ("mapping", "generator", "encoder", "discriminator"):
            print(f"  {name:<14}{counts[name]:>14,}")
    return 0


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="measure decoder/encoder speed on this machine")
    p.add_argument("--preset", default="demo", help="architecture preset timed")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="number format timed (auto: bf16 where the device runs it fast)")
    p.add_argument("--batch", type=int, default=16, help="frames decoded at once (one traversal)")
    p.add_argument("--rounds", type=int, default=7, help="paired conv-peak/decoder measurements (median counts)")
    p.add_argument("--no-traversal-256", action="store_true", help="skip the paper-preset traversal timing")
    add_threads_argument(p)
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    p.set_defaults(run=user_errors(_run_bench))


def _run_bench(args) -> int:
    from ..bench import run_benchmark

    result = run_benchmark(preset=args.preset, device=args.device, precision=args.precision, batch=args.batch,
                           rounds=args.rounds, traversal_256=not args.no_traversal_256, log=print)
    if args.json:
        print(json.dumps(result))
    return 0


def add_pack(sub) -> None:
    p = sub.add_parser("pack", help="a run's networks, the discriminator included, in half precision and "
                                    "without the optimizer state: what another machine continues from with "
                                    "train --init")
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint-last.safetensors (or any checkpoint)")
    p.add_argument("--out", required=True, type=Path, help="the packed .safetensors file")
    p.set_defaults(run=user_errors(_run_pack))


def _run_pack(args) -> int:
    from ..model import load_model, read_metadata, save_model

    meta = read_metadata(args.checkpoint)
    model = load_model(args.checkpoint)
    state = meta.get("training_state") or {}
    step = state.get("step", meta.get("step"))
    trained = meta.get("discriminator_trained", bool(state) and step > state["train_config"]["adversarial_start"])
    save_model(args.out, model, half=True, extra={"step": step, "discriminator_trained": trained,
                                                   "packed_from": args.checkpoint.name})
    networks = "every network, the discriminator included" if model.has_training_networks else \
        "the inference networks (the checkpoint holds no discriminator)"
    print(f"{args.out}: {networks}, in half precision ({args.out.stat().st_size / 1e6:.1f} MB; "
          f"{args.checkpoint.name}: {args.checkpoint.stat().st_size / 1e6:.1f} MB). "
          f"Continue from it with: seegaan-explore train --init {args.out} ...")
    return 0
