"""How the server refuses a request: :class:`ApiError` (raised anywhere below a route, answered
``{"error": message, "status": status}``) and :class:`ErrorBody`, its schema in the OpenAPI
document."""

try:  # the serve extra; create_app says how to install it when it is missing
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel
except ImportError:  # pragma: no cover - depends on the install
    JSONResponse = None
    BaseModel = object


class ApiError(Exception):
    """A request the server refuses: answered ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    def body(self) -> dict:
        return {"error": self.message, "status": self.status}

    def response(self):
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class ErrorBody(BaseModel):
    """Every refusal: a message and the HTTP status."""

    error: str
    status: int
