//! Response status codes this crate emits, with reason phrases and small canned bodies.

/// An HTTP status code. Only the codes a static server needs have names; any other
/// code can be carried with [`StatusCode::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusCode {
    /// 100
    Continue,
    /// 200
    Ok,
    /// 204
    NoContent,
    /// 206
    PartialContent,
    /// 301
    MovedPermanently,
    /// 304
    NotModified,
    /// 400
    BadRequest,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408
    RequestTimeout,
    /// 412
    PreconditionFailed,
    /// 413
    ContentTooLarge,
    /// 414
    UriTooLong,
    /// 416
    RangeNotSatisfiable,
    /// 431
    RequestHeaderFieldsTooLarge,
    /// 500
    InternalServerError,
    /// 501
    NotImplemented,
    /// 503
    ServiceUnavailable,
    /// 505
    HttpVersionNotSupported,
    /// Any other three-digit code, with its reason phrase.
    Other(u16, &'static str),
}

impl StatusCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            StatusCode::Continue => 100,
            StatusCode::Ok => 200,
            StatusCode::NoContent => 204,
            StatusCode::PartialContent => 206,
            StatusCode::MovedPermanently => 301,
            StatusCode::NotModified => 304,
            StatusCode::BadRequest => 400,
            StatusCode::Forbidden => 403,
            StatusCode::NotFound => 404,
            StatusCode::MethodNotAllowed => 405,
            StatusCode::RequestTimeout => 408,
            StatusCode::PreconditionFailed => 412,
            StatusCode::ContentTooLarge => 413,
            StatusCode::UriTooLong => 414,
            StatusCode::RangeNotSatisfiable => 416,
            StatusCode::RequestHeaderFieldsTooLarge => 431,
            StatusCode::InternalServerError => 500,
            StatusCode::NotImplemented => 501,
            StatusCode::ServiceUnavailable => 503,
            StatusCode::HttpVersionNotSupported => 505,
            StatusCode::Other(code, _) => code,
        }
    }

    /// The reason phrase sent in the status line.
    pub fn reason(self) -> &'static str {
        match self {
            StatusCode::Continue => "Continue",
            StatusCode::Ok => "OK",
            StatusCode::NoContent => "No Content",
            StatusCode::PartialContent => "Partial Content",
            StatusCode::MovedPermanently => "Moved Permanently",
            StatusCode::NotModified => "Not Modified",
            StatusCode::BadRequest => "Bad Request",
            StatusCode::Forbidden => "Forbidden",
            StatusCode::NotFound => "Not Found",
            StatusCode::MethodNotAllowed => "Method Not Allowed",
            StatusCode::RequestTimeout => "Request Timeout",
            StatusCode::PreconditionFailed => "Precondition Failed",
            StatusCode::ContentTooLarge => "Content Too Large",
            StatusCode::UriTooLong => "URI Too Long",
            StatusCode::RangeNotSatisfiable => "Range Not Satisfiable",
            StatusCode::RequestHeaderFieldsTooLarge => "Request Header Fields Too Large",
            StatusCode::InternalServerError => "Internal Server Error",
            StatusCode::NotImplemented => "Not Implemented",
            StatusCode::ServiceUnavailable => "Service Unavailable",
            StatusCode::HttpVersionNotSupported => "HTTP Version Not Supported",
            StatusCode::Other(_, reason) => reason,
        }
    }

    /// Whether a response with this status never has a body nor a `Content-Length`
    /// (RFC 9110 §6.4.1: 1xx, 204 and 304).
    pub fn is_bodiless(self) -> bool {
        let code = self.code();
        (100..200).contains(&code) || code == 204 || code == 304
    }

    /// A small HTML body for error and redirect statuses, in nginx's layout, or `None`
    /// for statuses that carry content of their own.
    pub fn canned_body(self) -> Option<&'static [u8]> {
        macro_rules! page {
            ($title:literal) => {
                concat!(
                    "<html>\r\n<head><title>",
                    $title,
                    "</title></head>\r\n<body>\r\n<center><h1>",
                    $title,
                    "</h1></center>\r\n<hr><center>oasis</center>\r\n</body>\r\n</html>\r\n"
                )
                .as_bytes()
            };
        }
        Some(match self {
            StatusCode::MovedPermanently => page!("301 Moved Permanently"),
            StatusCode::BadRequest => page!("400 Bad Request"),
            StatusCode::Forbidden => page!("403 Forbidden"),
            StatusCode::NotFound => page!("404 Not Found"),
            StatusCode::MethodNotAllowed => page!("405 Not Allowed"),
            StatusCode::RequestTimeout => page!("408 Request Time-out"),
            StatusCode::PreconditionFailed => page!("412 Precondition Failed"),
            StatusCode::ContentTooLarge => page!("413 Request Entity Too Large"),
            StatusCode::UriTooLong => page!("414 Request-URI Too Large"),
            StatusCode::RangeNotSatisfiable => page!("416 Requested Range Not Satisfiable"),
            StatusCode::RequestHeaderFieldsTooLarge => {
                page!("431 Request Header Fields Too Large")
            }
            StatusCode::InternalServerError => page!("500 Internal Server Error"),
            StatusCode::NotImplemented => page!("501 Not Implemented"),
            StatusCode::HttpVersionNotSupported => page!("505 HTTP Version Not Supported"),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_reasons() {
        assert_eq!(StatusCode::UriTooLong.code(), 414);
        assert_eq!(StatusCode::RequestHeaderFieldsTooLarge.code(), 431);
        assert_eq!(
            StatusCode::Other(418, "I'm a teapot").reason(),
            "I'm a teapot"
        );
        assert!(StatusCode::NotModified.is_bodiless());
        assert!(!StatusCode::NotFound.is_bodiless());
    }

    #[test]
    fn canned_bodies_name_the_status() {
        let body = StatusCode::NotFound.canned_body().unwrap_or_default();
        assert!(body.windows(13).any(|w| w == b"404 Not Found"));
        assert!(StatusCode::Ok.canned_body().is_none());
    }
}
