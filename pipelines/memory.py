"""Stage `memory`: the curse of memory (Zucchet & Orvieto 2024), one linear unit against its closed forms ->
results/memory/.

`python pipelines/memory.py memory.lambdas=[0.9,0.99,0.999] memory.rhos=[0,1] memory.n_sequences=2000`
"""

from gradlab.launch.cli import hydra_entry
from gradlab.theory.memory_config import MemoryConfig


@hydra_entry("memory")
def main(cfg: MemoryConfig) -> None:
    from gradlab.stages import memory  # numpy's work starts once the config is checked

    memory.run(cfg)


if __name__ == "__main__":
    main()
