"""The study report: one list of blocks rendered as `report.md` and a self-contained `report.html` (`build`), and
the plots embedded in it (`plots`)."""
