"""``analytics_engine``: a Workers Analytics Engine dataset, ``{type, name, dataset}``."""
from deployer.kinds.binding import BindingKind, Key

KIND = BindingKind(
    type="analytics_engine",
    description="An Analytics Engine dataset the script writes data points to with `NAME.writeDataPoint(...)`.",
    keys=(Key("dataset", "The dataset's name."),),
)
