"""The shipped accelerate configs (1 node x 8 GPUs, DDP and FSDP) are valid for the installed accelerate,
and `accelerate launch -m interp ...` reaches the same CLI (`python -m interp`)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


def launch_env(name: str, argv: list[str]) -> tuple[object, dict[str, str]]:
    """What `accelerate launch --config_file NAME -m interp ARGV` resolves to: (args, env of every rank)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(CONFIGS / name), "-m", "interp", *argv])
    args, _, _ = _validate_launch_command(args)
    return args, prepare_multi_gpu_env(args)


def test_ddp_config_is_one_node_of_eight_gpus():
    from accelerate.commands.config.config_args import ClusterConfig

    cfg = ClusterConfig.from_yaml_file(str(CONFIGS / "ddp_8gpu.yaml"))  # raises on unknown keys
    assert (cfg.distributed_type.value, cfg.num_processes, cfg.num_machines, cfg.mixed_precision) == ("MULTI_GPU", 8, 1, "bf16")
    args, env = launch_env("ddp_8gpu.yaml", ["finetune", "--help"])
    assert args.multi_gpu and not args.use_fsdp and args.num_processes == 8 and args.module
    assert args.training_script == "interp" and args.training_script_args == ["finetune", "--help"]
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_fsdp_config_shards_by_transformer_layer(monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import FullyShardedDataParallelPlugin

    cfg = ClusterConfig.from_yaml_file(str(CONFIGS / "fsdp_8gpu.yaml"))
    assert (cfg.distributed_type.value, cfg.num_processes, cfg.num_machines) == ("FSDP", 8, 1)
    args, env = launch_env("fsdp_8gpu.yaml", ["teach", "--help"])
    assert args.use_fsdp and args.num_processes == 8
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP" and env["FSDP_VERSION"] == "2"
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    plugin = FullyShardedDataParallelPlugin()  # what Accelerator() builds on each rank from that environment
    assert plugin.fsdp_version == 2 and plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    assert plugin.reshard_after_forward is True and plugin.activation_checkpointing and plugin.cpu_ram_efficient_loading


def test_python_dash_m_interp_is_the_cli(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["interp", "--help"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("interp", run_name="__main__")
    assert e.value.code == 0 and "reverse-link" in capsys.readouterr().out
