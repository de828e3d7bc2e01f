"""Run in the LlamaFactory environment: tokenize a dataset with LlamaFactory's own data pipeline
and print input_ids / labels of every sample as JSON (one object per line).

usage: python lf_encode.py MODEL_DIR DATASET_DIR DATASET TEMPLATE
"""

import json
import sys


def main() -> None:
    model_dir, dataset_dir, dataset, template_name = sys.argv[1:5]
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, training_args, _, _ = get_train_args(
        {
            "model_name_or_path": model_dir,
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "full",
            "dataset_dir": dataset_dir,
            "dataset": dataset,
            "template": template_name,
            "cutoff_len": 8192,
            "image_max_pixels": 50176,
            "output_dir": dataset_dir + "/_encode_out",
            "overwrite_cache": True,
            "report_to": "none",
            "use_cpu": True,
        }
    )
    tokenizer_module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
    module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
    tokenizer = tokenizer_module["tokenizer"]
    for row in module["train_dataset"]:
        ids = row["input_ids"]
        print(json.dumps({
            "input_ids": ids,
            "labels": row["labels"],
            "pieces": [tokenizer.decode([i], skip_special_tokens=False) for i in ids],
            "template_class": type(template).__name__,
        }))


if __name__ == "__main__":
    main()
