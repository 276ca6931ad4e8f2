//! OFPT_HELLO and its elements.

use crate::wire::{Tlv, emit_tlvs, get_u32, parse_tlvs, put_u32, tlvs_len};
use crate::{Error, Result};

const OFPHET_VERSIONBITMAP: u16 = 1;

/// A HELLO element. Its `length` excludes the padding to 8 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HelloElement {
    /// Supported versions: bit `v % 32` of word `v / 32` is set for version `v`.
    VersionBitmap(Vec<u32>),
    /// Another element type, kept as sent (body without padding).
    Unknown {
        /// Element type.
        kind: u16,
        /// Body after the 4-byte header.
        body: Vec<u8>,
    },
}

impl Tlv for HelloElement {
    const LENGTH_INCLUDES_PADDING: bool = false;

    fn tlv_type(&self) -> u16 {
        match self {
            Self::VersionBitmap(_) => OFPHET_VERSIONBITMAP,
            Self::Unknown { kind, .. } => *kind,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Self::VersionBitmap(words) => 4 * words.len(),
            Self::Unknown { body, .. } => body.len(),
        }
    }

    fn emit_body(&self, buf: &mut [u8]) {
        match self {
            Self::VersionBitmap(words) => {
                for (i, w) in words.iter().enumerate() {
                    put_u32(buf, 4 * i, *w);
                }
            }
            Self::Unknown { body, .. } => buf.copy_from_slice(body),
        }
    }
}

/// OFPT_HELLO: a list of elements, usually one version bitmap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// The elements in wire order.
    pub elements: Vec<HelloElement>,
}

impl Hello {
    /// A HELLO offering exactly `versions`.
    pub fn with_versions(versions: &[u8]) -> Self {
        let words = versions
            .iter()
            .map(|v| usize::from(*v) / 32)
            .max()
            .map_or(0, |m| m + 1);
        let mut bitmap = vec![0u32; words];
        for v in versions {
            bitmap[usize::from(*v) / 32] |= 1 << (v % 32);
        }
        Self {
            elements: vec![HelloElement::VersionBitmap(bitmap)],
        }
    }

    /// The version bitmap, if the peer sent one.
    pub fn bitmap(&self) -> Option<&[u32]> {
        self.elements.iter().find_map(|e| match e {
            HelloElement::VersionBitmap(w) => Some(w.as_slice()),
            HelloElement::Unknown { .. } => None,
        })
    }

    /// Whether the peer offers `version`: by bitmap when there is one, else by the header
    /// version (which the spec defines as the highest version the peer supports).
    pub fn supports(&self, header_version: u8, version: u8) -> bool {
        match self.bitmap() {
            Some(words) => words
                .get(usize::from(version) / 32)
                .is_some_and(|w| w & (1 << (version % 32)) != 0),
            None => header_version >= version,
        }
    }

    /// Decodes the body.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let elements = parse_tlvs(buf, "hello", |kind, body| {
            Ok(match kind {
                OFPHET_VERSIONBITMAP => {
                    if body.len() % 4 != 0 {
                        return Err(Error::bad_len("hello", "bitmap", 0, body.len()));
                    }
                    HelloElement::VersionBitmap(
                        (0..body.len() / 4).map(|i| get_u32(body, 4 * i)).collect(),
                    )
                }
                kind => HelloElement::Unknown {
                    kind,
                    body: body.to_vec(),
                },
            })
        })?;
        Ok(Self { elements })
    }

    /// Bytes of the body.
    pub fn buffer_len(&self) -> usize {
        tlvs_len(&self.elements)
    }

    /// Writes the body.
    pub fn emit(&self, buf: &mut [u8]) {
        emit_tlvs(&self.elements, buf);
    }
}
