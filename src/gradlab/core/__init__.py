"""The ground floor: the errors gradlab reports, the config choices, run folders and atomic files, where conf/ is,
figure writing."""
