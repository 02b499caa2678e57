"""What data/train.csv must look like: Pave validates every data version against it before training.

Add a column to the data? Add it here too (``strict`` rejects columns the schema does not name).
"""

import pandera.pandas as pa
from pandera.typing import Series


class TrainSchema(pa.DataFrameModel):
    """Breast-cancer diagnostic measurements (scikit-learn's copy of the UCI data set); target 1 = benign."""

    mean_radius: Series[float] = pa.Field(ge=0)
    mean_texture: Series[float] = pa.Field(ge=0)
    mean_perimeter: Series[float] = pa.Field(ge=0)
    mean_area: Series[float] = pa.Field(ge=0)
    mean_smoothness: Series[float] = pa.Field(ge=0)
    mean_compactness: Series[float] = pa.Field(ge=0)
    mean_concavity: Series[float] = pa.Field(ge=0)
    mean_concave_points: Series[float] = pa.Field(ge=0)
    mean_symmetry: Series[float] = pa.Field(ge=0)
    mean_fractal_dimension: Series[float] = pa.Field(ge=0)
    radius_error: Series[float] = pa.Field(ge=0)
    texture_error: Series[float] = pa.Field(ge=0)
    perimeter_error: Series[float] = pa.Field(ge=0)
    area_error: Series[float] = pa.Field(ge=0)
    smoothness_error: Series[float] = pa.Field(ge=0)
    compactness_error: Series[float] = pa.Field(ge=0)
    concavity_error: Series[float] = pa.Field(ge=0)
    concave_points_error: Series[float] = pa.Field(ge=0)
    symmetry_error: Series[float] = pa.Field(ge=0)
    fractal_dimension_error: Series[float] = pa.Field(ge=0)
    worst_radius: Series[float] = pa.Field(ge=0)
    worst_texture: Series[float] = pa.Field(ge=0)
    worst_perimeter: Series[float] = pa.Field(ge=0)
    worst_area: Series[float] = pa.Field(ge=0)
    worst_smoothness: Series[float] = pa.Field(ge=0)
    worst_compactness: Series[float] = pa.Field(ge=0)
    worst_concavity: Series[float] = pa.Field(ge=0)
    worst_concave_points: Series[float] = pa.Field(ge=0)
    worst_symmetry: Series[float] = pa.Field(ge=0)
    worst_fractal_dimension: Series[float] = pa.Field(ge=0)
    target: Series[int] = pa.Field(isin=[0, 1])

    class Config:
        strict = True
        coerce = True
