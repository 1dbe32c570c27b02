"""Stage `geometry`: the seed's high-dimensional experiment against exact theory -> results/geometry/.

`python pipelines/geometry.py geometry.dims=[2,10,100] geometry.n_pairs=2000 geometry.distributions=[cube,sphere]`
"""

from omegaconf import DictConfig

from gradlab.config import entry, validate_geometry


@entry("geometry", check=validate_geometry)
def main(cfg: DictConfig) -> None:
    from gradlab.geometry_stage import run_geometry  # torch loads only once the config is valid

    run_geometry(cfg)


if __name__ == "__main__":
    main()
