"""Stage `geometry`: the curse-of-dimensionality experiment against exact theory -> results/geometry/.

`python pipelines/geometry.py geometry.dims=[2,10,100] geometry.n_pairs=2000 geometry.distributions=[cube,sphere]`
"""

from gradlab.launch.cli import hydra_entry
from gradlab.theory.geometry_config import GeometryConfig


@hydra_entry("geometry")
def main(cfg: GeometryConfig) -> None:
    from gradlab.stages import geometry  # torch loads once the config is checked

    geometry.run(cfg)


if __name__ == "__main__":
    main()
