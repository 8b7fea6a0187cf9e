"""The walkthrough's "Fine-tune the model on a different set of labels", then "Apply the
fine-tuned model": exclude the logits when restoring, train only the new head.

slim_walkthrough.ipynb restores Inception V1 from the zoo without `InceptionV1/Logits`
and `InceptionV1/AuxLogits` (`get_init_fn`) and trains it on flowers; slim's
`train_image_classifier.py` adds `--trainable_scopes` to train the new head alone. This
is `kslim.training.train` with the same flags: `checkpoint_path`,
`checkpoint_exclude_scopes` and `trainable_scopes` default to the net's classifier
scopes. Then the fine-tuned checkpoint is evaluated and applied to a few test images.

    python examples/finetune.py --dataset_dir /data/flowers            # inception_v1
    python examples/finetune.py --model_name lenet --dataset_name digits \\
        --checkpoint_path /tmp/lenet_train --steps 100
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile

import numpy as np

import kslim
from kslim import training


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", default="inception_v1")
    parser.add_argument("--dataset_name", default="flowers")
    parser.add_argument("--dataset_dir", default=None)
    parser.add_argument("--eval_split", default=None,
                        help="split to evaluate (default: validation, or test)")
    parser.add_argument("--checkpoint_path", default="slim",
                        help="pretrained checkpoint: 'slim' (the zoo's) or a path")
    parser.add_argument("--scopes", default=None,
                        help="excluded and trained scopes (default: the net's heads)")
    parser.add_argument("--train_dir", default=None)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--show", type=int, default=5, help="test images to show")
    args = parser.parse_args(argv)
    spec = kslim.models.get_spec(args.model_name)
    scopes = args.scopes or ",".join(spec.head_scopes)
    train_dir = args.train_dir or tempfile.mkdtemp(prefix=f"{args.model_name}-finetune-")

    result = training.train(
        model_name=args.model_name, dataset_name=args.dataset_name,
        dataset_dir=args.dataset_dir, train_dir=train_dir,
        checkpoint_path=args.checkpoint_path, checkpoint_exclude_scopes=scopes,
        trainable_scopes=scopes, max_number_of_steps=args.steps,
        batch_size=args.batch_size, optimizer="adam", learning_rate=args.learning_rate,
        opt_epsilon=1e-8, learning_rate_decay_type="fixed", save_interval_secs=600,
        log_every_n_steps=max(1, args.steps // 5), seed=0, verbose="0")
    print(f"fine-tuned {scopes} for {result.global_step} steps: {result.checkpoint}")

    split = kslim.data.get_split(args.dataset_name, "train", args.dataset_dir)
    eval_split = args.eval_split or next(
        s for s in ("validation", "test") if s in split.spec.split_sizes)
    evaluation = training.evaluate(
        model_name=args.model_name, dataset_name=args.dataset_name,
        dataset_dir=args.dataset_dir, dataset_split_name=eval_split,
        checkpoint_path=result.checkpoint, eval_dir=os.path.join(train_dir, "eval"),
        batch_size=50, stream=io.StringIO())[-1]
    print(f"{eval_split}: eval/Accuracy={evaluation.accuracy} "
          f"eval/Recall_5={evaluation.recall_5}")

    # Apply the fine-tuned model: ground truth against prediction on a few images.
    test = kslim.data.get_split(args.dataset_name, eval_split, args.dataset_dir)
    size = spec.image_size
    batch = kslim.data.input_pipeline(test, args.show, args.model_name, image_size=size,
                                      is_training=False)
    images, labels = next(iter(batch))
    model = kslim.models.create_model(args.model_name, num_classes=test.num_classes,
                                      input_shape=tuple(images.shape[1:]),
                                      weights=result.checkpoint)
    predicted = np.argmax(model(images, training=False), axis=-1)
    names = test.labels_to_names or {}
    shown = []
    for truth, guess in zip(labels.numpy(), predicted):
        shown.append((names.get(int(truth), str(truth)), names.get(int(guess), str(guess))))
        print(f"ground truth: {shown[-1][0]:12s} prediction: {shown[-1][1]}")
    return {"result": result, "accuracy": evaluation.accuracy, "shown": shown,
            "scopes": scopes}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
