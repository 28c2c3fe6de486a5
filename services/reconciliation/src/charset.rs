//! Which character encoding a document is written in, decided from its first bytes as XML 1.0
//! says (§4.3.3 and appendix F): a byte order mark, else the `encoding` of the XML
//! declaration, else UTF-8. Banks and treasury systems still write statements and giornali di
//! cassa in ISO-8859-1 or windows-1252; such a file is read in its own encoding rather than
//! refused as if it were broken UTF-8. An encoding nobody can name, or a declaration that
//! contradicts the bytes, refuses the file before anything of it is read.

use encoding_rs::Encoding;
use quick_xml::encoding::{DetectedEncoding, detect_encoding};

/// Bytes read ahead to find the XML declaration: far more than any declaration takes.
pub(crate) const HEAD_BYTES: u64 = 1024;

/// The encoding of a document whose first bytes (up to [`HEAD_BYTES`]) are `head`, or why it
/// cannot be read.
pub(crate) fn encoding_of(head: &[u8]) -> Result<&'static Encoding, String> {
    let detected = detect_encoding(head);
    if let Some(
        found @ (DetectedEncoding::Utf16LeBom
        | DetectedEncoding::Utf16BeBom
        | DetectedEncoding::Utf16LeLike
        | DetectedEncoding::Utf16BeLike),
    ) = detected
    {
        // Its declaration, if any, is itself in UTF-16: the bytes decide.
        return Ok(found.encoding());
    }
    let bom = matches!(detected, Some(DetectedEncoding::Utf8Bom));
    let text = if bom { &head[3..] } else { head };
    let Some(label) = declared_encoding(text) else {
        return Ok(encoding_rs::UTF_8);
    };
    let shown = String::from_utf8_lossy(label);
    let Some(encoding) = Encoding::for_label_no_replacement(label) else {
        return Err(format!(
            "the XML declaration names the encoding '{shown}', which is not one incasso knows"
        ));
    };
    if !encoding.is_ascii_compatible() {
        return Err(format!(
            "the XML declaration names the encoding '{shown}', but the file is not written in it"
        ));
    }
    if bom && encoding != encoding_rs::UTF_8 {
        return Err(format!(
            "the file starts with a UTF-8 byte order mark but its XML declaration names the \
             encoding '{shown}'"
        ));
    }
    Ok(encoding)
}

/// The value of `encoding` in the XML declaration `text` starts with, if it has one.
fn declared_encoding(text: &[u8]) -> Option<&[u8]> {
    let rest = text.strip_prefix(b"<?xml")?;
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    let end = rest.windows(2).position(|w| w == b"?>")?;
    let declaration = &rest[..end];
    let at = declaration
        .windows(b"encoding".len())
        .position(|w| w == b"encoding")?;
    let after = declaration[at + b"encoding".len()..].trim_ascii_start();
    let after = after.strip_prefix(b"=")?.trim_ascii_start();
    let quote = *after.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let value = &after[1..];
    let close = value.iter().position(|&b| b == quote)?;
    Some(&value[..close])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(head: &[u8]) -> Result<&'static str, String> {
        encoding_of(head).map(Encoding::name)
    }

    #[test]
    fn the_declaration_names_the_encoding() {
        assert_eq!(name(b"<?xml version=\"1.0\"?><a/>"), Ok("UTF-8"));
        assert_eq!(name(b"<a/>"), Ok("UTF-8"));
        assert_eq!(
            name(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>"),
            Ok("UTF-8")
        );
        // WHATWG reads ISO-8859-1 as its superset windows-1252, as browsers do.
        assert_eq!(
            name(b"<?xml version='1.0' encoding = 'ISO-8859-1' standalone='yes'?><a/>"),
            Ok("windows-1252")
        );
        assert_eq!(
            name(b"<?xml version=\"1.0\" encoding=\"iso-8859-15\"?>"),
            Ok("ISO-8859-15")
        );
        assert_eq!(
            name(b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
            Ok("UTF-8")
        );
        assert_eq!(name(b"\xFF\xFE<\0?\0x\0m\0l\0"), Ok("UTF-16LE"));
        assert_eq!(name(b"\0<\0?\0x\0m\0l"), Ok("UTF-16BE"));
    }

    #[test]
    fn an_encoding_that_cannot_be_read_is_named() {
        let unknown = name(b"<?xml version=\"1.0\" encoding=\"EBCDIC-IT\"?>").unwrap_err();
        assert!(unknown.contains("'EBCDIC-IT'"), "{unknown}");
        let utf16 = name(b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>").unwrap_err();
        assert!(utf16.contains("not written in it"), "{utf16}");
        let both =
            name(b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>").unwrap_err();
        assert!(both.contains("byte order mark"), "{both}");
    }

    #[test]
    fn a_declaration_cut_short_leaves_the_parser_to_refuse_it() {
        assert_eq!(
            name(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\""),
            Ok("UTF-8")
        );
        assert_eq!(name(b"<?xmlfoo encoding=\"ISO-8859-1\"?>"), Ok("UTF-8"));
    }
}
