"""RecBole itself on MovieLens-100k, with its default config and seed: run by
`benchmarks/cf_protocol.py` inside a virtual environment of its own (RecBole is never a
dependency of lookgraph).

    python recbole_run.py MODEL DATA_PATH OUT.json ['{"stopping_step": 50}']

DATA_PATH holds `ml-100k/ml-100k.inter` (the files RecBole's wheel ships). The only settings
given are what the comparison needs: CPU, Recall, NDCG and MRR at 10 and 20, quiet output; and
the optional JSON of RecBole settings that differ from its defaults (kept in OUT.json).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import torch

_load = torch.load
# RecBole 1.2.1 reloads its best checkpoint with torch.load, which torch 2.6+ restricts to
# tensors by default; the checkpoint is the one it just wrote.
torch.load = lambda *args, **kwargs: _load(*args, **{**kwargs, "weights_only": False})

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_model, get_trainer, init_seed  # noqa: E402


def main() -> None:
    model_name, data_path, out = sys.argv[1:4]
    changed = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    torch.set_num_threads(2)
    config = Config(model=model_name, dataset="ml-100k", config_dict={
        "data_path": data_path, "use_gpu": False, "topk": [10, 20], "metrics": ["Recall", "NDCG", "MRR"],
        "show_progress": False, "checkpoint_dir": tempfile.mkdtemp(prefix="recbole-"), "state": "WARNING", **changed})
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    epochs, train_epoch = [0], trainer._train_epoch

    def counted(*args, **kwargs):  # RecBole keeps no count of the epochs it ran
        epochs[0] += 1
        return train_epoch(*args, **kwargs)

    trainer._train_epoch = counted
    started = time.perf_counter()
    trainer.fit(train, valid, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - started
    result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    with open(out, "w") as f:
        json.dump({"model": model_name, "seed": config["seed"], "split": str(config["eval_args"]), "changed": changed,
                   "valid_metric": config["valid_metric"], "stopping_step": config["stopping_step"],
                   "fit_seconds": round(fit_seconds, 1), "epochs": epochs[0],
                   "test": {k: float(v) for k, v in result.items()}}, f, indent=2)


if __name__ == "__main__":
    main()
