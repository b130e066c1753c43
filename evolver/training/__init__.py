"""Training: LoRA SFT on D+ then DPO on D± / Dpref, each in a child process.

Entry points are `evolver.training.phase.run_sft(ctx)` and `run_dpo(ctx)`. The parent side
(phase, launch, data, adapters, spec) imports no torch; the child side (child, sft, dpo,
runtime) runs only inside `python -m evolver.training.child SPEC.json`.
"""
