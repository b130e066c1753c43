"""Training: LoRA SFT on D+ then DPO on D± / Dpref, each in a child process.

The stages `evolver.stages.sft` and `evolver.stages.dpo` call `job` (spec, child, record). The
parent side (job, launch, data, spec) imports no torch; the child side (child, sft, dpo,
runtime, adapters) runs only inside `python -m evolver.training.child SPEC.json`.
"""
