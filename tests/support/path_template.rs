//! Matching a request path to an OpenAPI path template, shared by the test
//! crates whose stand-ins validate requests against a vendor's description.

use std::collections::BTreeMap;

/// The path parameters when `path` fits `template` (`/hotels/{hotelId}/…`),
/// percent-decoded; `None` when it does not fit.
pub fn match_template(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let want: Vec<&str> = template.split('/').collect();
    let got: Vec<&str> = path.split('/').collect();
    if want.len() != got.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (w, g) in want.iter().zip(&got) {
        if let Some(name) = w.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            if g.is_empty() {
                return None;
            }
            params.insert(name.to_string(), percent_decode(g));
        } else if w != g {
            return None;
        }
    }
    Some(params)
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
