"""``python -m stages.train --run-dir RUN``: the train stage as a program torchrun / accelerate can launch K times."""

from stages.train.launch import main

if __name__ == "__main__":
    raise SystemExit(main())
