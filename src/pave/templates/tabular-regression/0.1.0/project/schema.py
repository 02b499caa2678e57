"""What data/train.csv must look like: Pave validates every data version against it before training.

Add a column to the data? Add it here too (``strict`` rejects columns the schema does not name).
"""

import pandera.pandas as pa
from pandera.typing import Series


class TrainSchema(pa.DataFrameModel):
    """Diabetes patients (scikit-learn's copy of the Efron et al. data set, unscaled).

    ``progression`` is a measure of disease progression one year after the baseline measurements.
    """

    age: Series[float] = pa.Field(ge=0, le=120)
    sex: Series[float] = pa.Field(isin=[1, 2])
    bmi: Series[float] = pa.Field(gt=0)
    bp: Series[float] = pa.Field(gt=0, description="average blood pressure")
    tc: Series[float] = pa.Field(gt=0, description="total serum cholesterol")
    ldl: Series[float] = pa.Field(gt=0, description="low-density lipoproteins")
    hdl: Series[float] = pa.Field(gt=0, description="high-density lipoproteins")
    tch: Series[float] = pa.Field(gt=0, description="total cholesterol / HDL")
    ltg: Series[float] = pa.Field(gt=0, description="log of serum triglycerides")
    glu: Series[float] = pa.Field(gt=0, description="blood sugar level")
    progression: Series[float] = pa.Field(ge=0)

    class Config:
        strict = True
        coerce = True
