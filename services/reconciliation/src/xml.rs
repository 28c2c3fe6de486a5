//! The streaming XML driver every format reader runs on: it pulls events from a buffered
//! source with quick-xml (so a 1 GB statement is read in a few kilobytes), keeps the path of
//! element local names and the text of the element being read, counts lines as it goes, and
//! hands a [`Handler`] each element's start and end. Whatever a handler refuses, and whatever
//! is not well-formed, becomes a [`FormatError`] naming the file, the line and the element.
//! Document type declarations and entities other than the predefined ones are refused (no
//! entity expansion, no external fetch), and depth and text size are bounded. A document in
//! another encoding than UTF-8 ([`crate::charset`]) is decoded to UTF-8 as it streams.

use std::io::{BufRead, Cursor, Read};

use quick_xml::encoding::DecodingReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::error::FormatError;

/// Deepest nesting accepted (camt's deepest path is about 12).
const MAX_DEPTH: usize = 64;
/// Longest text of one element (an OPI causale has no maximum; 1 MiB is far beyond any bank's).
const MAX_TEXT_BYTES: usize = 1 << 20;

/// A start tag as handlers see it.
#[derive(Debug)]
pub(crate) struct Start<'a> {
    /// Local name.
    pub name: &'a str,
    /// Namespace URI, when qualified.
    pub namespace: Option<&'a str>,
    /// Attributes (local name, value), namespace declarations excluded.
    pub attributes: Vec<(String, String)>,
}

/// Receives elements. `path` holds the local names from the root to the element itself.
pub(crate) trait Handler {
    /// An element starts.
    fn start(&mut self, path: &[String], start: &Start<'_>) -> Result<(), String>;
    /// An element ends; `text` is its own text as written (entities resolved, line ends
    /// normalised; the indentation before its children, if it has any, dropped).
    fn end(&mut self, path: &[String], text: &str) -> Result<(), String>;
}

/// Counts the lines of what the XML reader consumed.
struct LineCounter<R> {
    inner: R,
    newlines: u64,
}

impl<R: BufRead> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.newlines += memchr_count(&buf[..n]);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineCounter<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        // The buffer is already filled: fill_buf returns it without reading.
        if let Ok(buffer) = self.inner.fill_buf() {
            self.newlines += memchr_count(&buffer[..amount.min(buffer.len())]);
        }
        self.inner.consume(amount);
    }
}

fn memchr_count(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Reads a whole document from `source`, calling `handler`. `file` names it in errors.
pub(crate) fn drive<R: BufRead>(
    file: &str,
    mut source: R,
    handler: &mut dyn Handler,
) -> Result<(), FormatError> {
    let at_start = |reason: String| FormatError {
        file: file.to_owned(),
        line: 1,
        element: String::new(),
        reason,
    };
    let mut head = Vec::new();
    (&mut source)
        .take(crate::charset::HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|error| at_start(format!("cannot be read: {error}")))?;
    let encoding = crate::charset::encoding_of(&head).map_err(at_start)?;
    let source = Cursor::new(head).chain(source);
    if encoding == encoding_rs::UTF_8 {
        // The parser checks UTF-8 itself, event by event, so a bad byte is refused with the
        // line of its element; a decoding reader would only know the chunk it was in.
        drive_utf8(file, source, handler)
    } else {
        let mut decoded = DecodingReader::new(source);
        decoded.set_encoding(encoding);
        drive_utf8(file, decoded, handler)
    }
}

/// [`drive`] over a source in UTF-8.
fn drive_utf8<R: BufRead>(
    file: &str,
    source: R,
    handler: &mut dyn Handler,
) -> Result<(), FormatError> {
    let mut reader = NsReader::from_reader(LineCounter {
        inner: source,
        newlines: 0,
    });
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = true;
    let mut buffer = Vec::with_capacity(8 * 1024);
    let mut path: Vec<String> = Vec::new();
    // (line of the start tag, text so far) per open element.
    let mut open: Vec<(u64, String)> = Vec::new();
    let mut seen_root = false;
    let fail = |line: u64, path: &[String], reason: String| FormatError {
        file: file.to_owned(),
        line,
        element: path.join("/"),
        reason,
    };
    loop {
        buffer.clear();
        let line = reader.get_ref().newlines + 1;
        let (resolve, event) = match reader.read_resolved_event_into(&mut buffer) {
            Ok(pair) => pair,
            Err(error) => {
                let line = reader.get_ref().newlines + 1;
                return Err(fail(line, &path, format!("not well-formed XML: {error}")));
            }
        };
        match event {
            Event::Start(start) => {
                if seen_root && path.is_empty() {
                    return Err(fail(line, &path, "content after the root element".into()));
                }
                seen_root = true;
                if path.len() >= MAX_DEPTH {
                    return Err(fail(line, &path, format!("nested deeper than {MAX_DEPTH}")));
                }
                let name = start.local_name().as_ref().to_owned();
                let namespace = match &resolve {
                    ResolveResult::Bound(ns) => Some(ns.as_ref().to_owned()),
                    ResolveResult::Unbound => None,
                    ResolveResult::Unknown(prefix) => {
                        path.push(name);
                        return Err(fail(
                            line,
                            &path,
                            format!("undeclared namespace prefix '{prefix}'"),
                        ));
                    }
                };
                let mut attributes = Vec::new();
                for attribute in start.attributes() {
                    let attribute = attribute
                        .map_err(|e| fail(line, &path, format!("malformed attribute: {e}")))?;
                    let key = attribute.key;
                    if key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let value = attribute
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| fail(line, &path, format!("malformed attribute: {e}")))?;
                    attributes.push((key.local_name().as_ref().to_owned(), value.into_owned()));
                }
                path.push(name);
                let name = path.last().map(String::as_str).unwrap_or_default();
                let start = Start {
                    name,
                    namespace: namespace.as_deref(),
                    attributes,
                };
                handler
                    .start(&path, &start)
                    .map_err(|reason| fail(line, &path, reason))?;
                // White space before a child is indentation, not the parent's text: dropped
                // here, so that it never piles up over a container's million children.
                if let Some((_, parent)) = open.last_mut()
                    && is_xml_space(parent)
                {
                    parent.clear();
                }
                open.push((line, String::new()));
            }
            Event::End(_) => {
                let (start_line, text) = open.pop().unwrap_or_default();
                handler
                    .end(&path, &text)
                    .map_err(|reason| fail(start_line, &path, reason))?;
                path.pop();
            }
            Event::Text(text) => {
                let content = text.xml10_content();
                append(&mut open, &content).map_err(|reason| fail(line, &path, reason))?;
            }
            Event::CData(data) => {
                append(&mut open, &data.into_inner())
                    .map_err(|reason| fail(line, &path, reason))?;
            }
            Event::GeneralRef(reference) => {
                let character = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match reference.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => {
                            return Err(fail(
                                line,
                                &path,
                                format!("entity &{other}; is not accepted"),
                            ));
                        }
                    },
                    Err(e) => return Err(fail(line, &path, format!("bad reference: {e}"))),
                };
                append(&mut open, character.encode_utf8(&mut [0; 4]))
                    .map_err(|reason| fail(line, &path, reason))?;
            }
            Event::DocType(_) => {
                return Err(fail(
                    line,
                    &path,
                    "document type declarations are not accepted".into(),
                ));
            }
            Event::Empty(_) => return Err(fail(line, &path, "unexpected empty element".into())),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !path.is_empty() {
        let line = reader.get_ref().newlines + 1;
        return Err(fail(
            line,
            &path,
            "the document ends inside this element".into(),
        ));
    }
    if !seen_root {
        return Err(fail(1, &path, "no XML element in the file".into()));
    }
    Ok(())
}

/// True when `text` is only XML white space (space, tab, CR, LF: not a no-break space,
/// which is content).
fn is_xml_space(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn append(open: &mut [(u64, String)], text: &str) -> Result<(), String> {
    match open.last_mut() {
        Some((_, buffer)) => {
            if buffer.len() + text.len() > MAX_TEXT_BYTES {
                return Err(format!("a text longer than {MAX_TEXT_BYTES} bytes"));
            }
            buffer.push_str(text);
            Ok(())
        }
        None if is_xml_space(text) => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

/// True when `path` ends with `tail`.
pub(crate) fn ends(path: &[String], tail: &[&str]) -> bool {
    path.len() >= tail.len()
        && path[path.len() - tail.len()..]
            .iter()
            .zip(tail)
            .all(|(a, b)| a == b)
}
