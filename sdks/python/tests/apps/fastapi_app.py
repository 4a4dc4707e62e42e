"""The held-out FastAPI app: a route protected with the SDK in three lines (import, auth, Depends).

Run: KEYWARD_URL=http://… uvicorn fastapi_app:app --port N
"""

from fastapi import Depends, FastAPI

from keyward import AsyncKeyward, Keyward
from keyward.fastapi import KeyAuth

app = FastAPI()
require_read = KeyAuth(Keyward(), permissions="invoices.read")  # KEYWARD_URL from the environment


@app.get("/invoices")
def list_invoices(key=Depends(require_read)):
    return {"invoices": [], "key_id": key.key_id, "permissions": key.permissions}


@app.get("/async/invoices/{invoice_id}")
async def get_invoice(invoice_id: str, key=Depends(KeyAuth(AsyncKeyward(), permissions=["invoices.read"], scope=lambda r: f"invoice:{r.path_params['invoice_id']}"))):
    return {"invoice": invoice_id, "key_id": key.key_id}


@app.post("/signed")
async def signed(key=Depends(KeyAuth(AsyncKeyward(), permissions="invoices.write"))):
    return {"key_id": key.key_id}


@app.get("/health")
def health():
    return {"ok": True}
