"""The bench-serve baseline: a plain FastAPI app in one uvicorn process, same model, same API,
one model call per request, no batching, metrics or logging.

    MLFLOW_TRACKING_URI=... RAKUTEN_MODEL_NAME=... \
        uvicorn rakuten_assets.benchmarks.serve_baseline:app
"""

import uuid

import pandas as pd
from fastapi import FastAPI

from rakuten_assets.data.categories import category_name
from rakuten_assets.ml.model_loader import load_model
from rakuten_assets.settings import get_settings
from serving.schemas import Prediction, PredictRequest

settings = get_settings()
model = load_model(
    f"models:/{settings.model_name}@production", settings.resolved_mlflow_tracking_uri
)
classes = [int(c) for c in model.classes_]
app = FastAPI(title="baseline")


@app.post("/predict")
def predict(request: PredictRequest) -> Prediction:
    frame = pd.DataFrame([{"designation": request.designation, "description": request.description}])
    probabilities = model.predict_proba(frame)[0]
    order = probabilities.argsort()[::-1][: settings.top_k]
    code = classes[order[0]]
    return Prediction(
        prdtypecode=code,
        category=category_name(code),
        confidence=float(probabilities[order[0]]),
        top_k=[
            {
                "prdtypecode": classes[i],
                "category": category_name(classes[i]),
                "probability": float(probabilities[i]),
            }
            for i in order
        ],
        model_version="baseline",
        prediction_id=str(uuid.uuid4()),
    )
