//! The fields of a mutating admin call (`POST /override`, `POST /weight`),
//! read through axum's extractors in every form the API has always taken: a
//! JSON object body whatever the content type says (`curl -d '{…}'` labels
//! it a form), a form body, or, with no body, the query string.
//!
//! Only decides which form the request is in; the handler judges the values.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Form, FromRequest, Query, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// A request's fields, or serde's words on why they do not fit `T`.
///
/// An unreadable body (over the body limit, cut off) is rejected by the
/// extractor itself, with axum's status for it, as the `Bytes` extractor did.
pub(super) struct Fields<T> {
    /// The fields, or why they do not deserialize.
    pub parsed: Result<T, String>,
    /// They came as a form body (an HTML form, which expects a redirect).
    pub form: bool,
}

impl<S, T> FromRequest<S> for Fields<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        if bytes.is_empty() {
            let parsed = Query::<T>::try_from_uri(&parts.uri)
                .map(|Query(value)| value)
                .map_err(|err| reason(&err));
            return Ok(Self {
                parsed,
                form: false,
            });
        }
        let json_object =
            serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| v.is_object());
        let form_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let form = !json_object && form_type;
        let parsed = if !form {
            Json::<T>::from_bytes(&bytes)
                .map(|Json(value)| value)
                .map_err(|err| reason(&err))
        } else {
            Form::<T>::from_request(Request::from_parts(parts, Body::from(bytes)), state)
                .await
                .map(|Form(value)| value)
                .map_err(|err| reason(&err))
        };
        Ok(Self { parsed, form })
    }
}

/// Why a body, form or query string did not deserialize: serde's words with
/// the field's path, without the preamble axum's rejection text adds.
pub(super) fn reason(rejection: &dyn std::error::Error) -> String {
    rejection
        .source()
        .map_or_else(|| rejection.to_string(), ToString::to_string)
}
