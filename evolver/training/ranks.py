"""`accelerate launch`, with the CPU ranks it leaves out: `python -m evolver.training.ranks [accelerate args] -m MOD ...`.

accelerate 1.15 starts `--cpu --num_processes N` as one process (its simple launcher; several
only under MPI with `--mpirun_hostfile`), so `accelerate_args = ["--num_processes", "2", "--cpu"]`
trained in a single rank. Here accelerate's own parser reads the flags; CPU with N > 1 starts N
ranks with torchrun, as accelerate does for GPUs, and each rank's accelerate state then runs DDP
over gloo (`ACCELERATE_USE_CPU`). Several machines take accelerate's flags (`--num_machines`,
`--machine_rank`, `--main_process_ip`, `--main_process_port`). Everything else (GPUs, DeepSpeed,
FSDP, a config file) goes to accelerate's launcher unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys


def torchrun_args(args: argparse.Namespace) -> list[str]:
    """torchrun's command line for accelerate's parsed (and validated) CPU arguments."""
    machines = args.num_machines or 1
    out = ["--nproc_per_node", str(args.num_processes // machines), "--nnodes", str(machines)]
    if machines == 1:
        out.append("--standalone")  # a free port of its own: concurrent trainings never collide
    else:
        out += [
            "--node_rank",
            str(args.machine_rank),
            "--master_addr",
            str(args.main_process_ip),
            "--master_port",
            str(args.main_process_port or 29500),
        ]
    if args.module:
        out.append("--module")
    return [*out, args.training_script, *args.training_script_args]


def is_cpu_ranks(args: argparse.Namespace) -> bool:
    """Several CPU processes without MPI: what accelerate's launcher would run as one."""
    return bool(args.cpu) and (args.num_processes or 1) > 1 and args.mpirun_hostfile is None


def main(argv: list[str] | None = None) -> None:
    from accelerate.commands.launch import _validate_launch_command, launch_command, launch_command_parser

    args = launch_command_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not is_cpu_ranks(args):
        launch_command(args)
        return
    args, _, _ = _validate_launch_command(args)
    import torch.distributed.run as torchrun

    os.environ["ACCELERATE_USE_CPU"] = "true"
    if args.num_cpu_threads_per_process:
        os.environ.setdefault("OMP_NUM_THREADS", str(args.num_cpu_threads_per_process))
    torchrun.main(torchrun_args(args))


if __name__ == "__main__":
    main()
