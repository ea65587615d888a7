//! Kafka's primitive types as coordinator records use them (classic and
//! flexible encodings), shared by the `__consumer_offsets` and
//! `__transaction_state` codecs. Reading never panics and allocates no more
//! than the input's size suggests.

use bytes::{BufMut, Bytes, BytesMut};

/// Why bytes are not a record of a coordinator topic (or a record cannot be
/// written as one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("truncated {what}")]
    Truncated { what: &'static str },
    #[error("unknown key version {version}")]
    UnknownKeyVersion { version: i16 },
    #[error("unknown {record} version {version}")]
    UnknownValueVersion { record: &'static str, version: i16 },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("{what} has invalid length {length}")]
    InvalidLength { what: &'static str, length: i64 },
    #[error("non-nullable {what} is null")]
    UnexpectedNull { what: &'static str },
    #[error("unsigned varint of {what} is longer than 5 bytes")]
    InvalidVarint { what: &'static str },
    #[error("{what} has invalid value {value}")]
    InvalidValue { what: &'static str, value: i64 },
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes { what: &'static str, count: usize },
    /// Encoding only: the schema's length prefix cannot hold `len`.
    #[error("{what} is {len} bytes, more than the schema's limit of {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// Reads Kafka's primitive types off a byte slice, classic or flexible.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn classic(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            flexible: false,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated { what });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], CodecError> {
        let (head, tail) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(CodecError::Truncated { what })?;
        self.buf = tail;
        Ok(*head)
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, CodecError> {
        self.array(what).map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, CodecError> {
        self.array(what).map(i32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, CodecError> {
        self.array(what).map(i64::from_be_bytes)
    }

    pub(crate) fn unsigned_varint(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let mut value = 0u32;
        for i in 0..5 {
            let [byte] = self.array::<1>(what)?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::InvalidVarint { what })
    }

    /// A flexible length: varint of length + 1, 0 = null.
    pub(crate) fn compact_len(&mut self, what: &'static str) -> Result<Option<usize>, CodecError> {
        let n = self.unsigned_varint(what)?;
        Ok(n.checked_sub(1).map(|n| n as usize))
    }

    /// A classic length prefix: -1 = null, other negatives invalid.
    pub(crate) fn classic_len(
        length: i32,
        what: &'static str,
    ) -> Result<Option<usize>, CodecError> {
        match length {
            -1 => Ok(None),
            n => usize::try_from(n)
                .map(Some)
                .map_err(|_| CodecError::InvalidLength {
                    what,
                    length: n.into(),
                }),
        }
    }

    pub(crate) fn nullable_string(
        &mut self,
        what: &'static str,
    ) -> Result<Option<String>, CodecError> {
        let len = if self.flexible {
            self.compact_len(what)?
        } else {
            let n = self.i16(what)?;
            Self::classic_len(n.into(), what)?
        };
        let Some(len) = len else { return Ok(None) };
        let raw = self.take(len, what)?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| CodecError::InvalidUtf8 { what })
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, CodecError> {
        self.nullable_string(what)?
            .ok_or(CodecError::UnexpectedNull { what })
    }

    pub(crate) fn nullable_bytes(
        &mut self,
        what: &'static str,
    ) -> Result<Option<&'a [u8]>, CodecError> {
        let len = if self.flexible {
            self.compact_len(what)?
        } else {
            let n = self.i32(what)?;
            Self::classic_len(n, what)?
        };
        len.map(|len| self.take(len, what)).transpose()
    }

    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<Bytes, CodecError> {
        self.nullable_bytes(what)?
            .map(Bytes::copy_from_slice)
            .ok_or(CodecError::UnexpectedNull { what })
    }

    /// Element count of a non-nullable array.
    pub(crate) fn array_len(&mut self, what: &'static str) -> Result<usize, CodecError> {
        self.nullable_array_len(what)?
            .ok_or(CodecError::UnexpectedNull { what })
    }

    /// Skips a flexible struct's tagged fields (none is known here).
    pub(crate) fn tagged_fields(&mut self, what: &'static str) -> Result<(), CodecError> {
        self.tagged_fields_with(what, |_, _| Ok(()))
    }

    /// Reads a flexible struct's tagged fields, handing each `(tag, data)`
    /// to `visit` (which ignores the tags it does not know, as Kafka does).
    pub(crate) fn tagged_fields_with(
        &mut self,
        what: &'static str,
        mut visit: impl FnMut(u32, &'a [u8]) -> Result<(), CodecError>,
    ) -> Result<(), CodecError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint(what)?;
        for _ in 0..count {
            let tag = self.unsigned_varint(what)?;
            let size = self.unsigned_varint(what)?;
            let data = self.take(size as usize, what)?;
            visit(tag, data)?;
        }
        Ok(())
    }

    /// Element count of a nullable array (`None`: null).
    pub(crate) fn nullable_array_len(
        &mut self,
        what: &'static str,
    ) -> Result<Option<usize>, CodecError> {
        if self.flexible {
            self.compact_len(what)
        } else {
            let n = self.i32(what)?;
            Self::classic_len(n, what)
        }
    }

    pub(crate) fn finish(self, what: &'static str) -> Result<(), CodecError> {
        match self.buf.len() {
            0 => Ok(()),
            count => Err(CodecError::TrailingBytes { what, count }),
        }
    }
}

/// Writes Kafka's primitive types, classic or (with `flexible`) compact;
/// a length that does not fit its prefix is clamped and remembered as
/// `error`.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: BytesMut,
    pub(crate) error: Option<CodecError>,
    pub(crate) flexible: bool,
}

impl Writer {
    pub(crate) fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    pub(crate) fn unsigned_varint(&mut self, mut v: u32) {
        while v >= 0x80 {
            // Truncation intended: the low seven bits plus the continuation bit.
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// A length prefix: classic int16/int32 (per `classic_i16`) or compact
    /// varint of length + 1; `None` writes null.
    fn len_prefix(&mut self, len: Option<usize>, classic_i16: bool) {
        match (self.flexible, len) {
            // Callers clamp `len` to at most i32::MAX first.
            (true, Some(n)) => self.unsigned_varint(n as u32 + 1),
            (true, None) => self.unsigned_varint(0),
            (false, Some(n)) if classic_i16 => self.buf.put_i16(n as i16),
            (false, Some(n)) => self.buf.put_i32(n as i32),
            (false, None) if classic_i16 => self.buf.put_i16(-1),
            (false, None) => self.buf.put_i32(-1),
        }
    }

    /// A flexible struct's tagged fields, `(tag, data)` in ascending tag
    /// order; nothing in a classic struct.
    pub(crate) fn tagged_fields(&mut self, fields: &[(u32, &[u8])]) {
        if !self.flexible {
            return;
        }
        // A struct has a handful of tags at most.
        self.unsigned_varint(fields.len() as u32);
        for (tag, data) in fields {
            self.unsigned_varint(*tag);
            self.unsigned_varint(data.len() as u32);
            self.buf.put_slice(data);
        }
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub(crate) fn too_long(&mut self, what: &'static str, len: usize, max: usize) {
        if self.error.is_none() {
            self.error = Some(CodecError::TooLong { what, len, max });
        }
    }

    pub(crate) fn string(&mut self, s: &str, what: &'static str) {
        const MAX: usize = i16::MAX as usize;
        let s = if s.len() > MAX {
            self.too_long(what, s.len(), MAX);
            &s[..s.floor_char_boundary(MAX)]
        } else {
            s
        };
        // Fits: at most i16::MAX bytes.
        self.len_prefix(Some(s.len()), true);
        self.buf.put_slice(s.as_bytes());
    }

    pub(crate) fn nullable_string(&mut self, s: Option<&str>, what: &'static str) {
        match s {
            Some(s) => self.string(s, what),
            None => self.len_prefix(None, true),
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8], what: &'static str) {
        const MAX: usize = i32::MAX as usize;
        let b = if b.len() > MAX {
            self.too_long(what, b.len(), MAX);
            &b[..MAX]
        } else {
            b
        };
        self.len_prefix(Some(b.len()), false);
        self.buf.put_slice(b);
    }

    /// Writes an array's count; the caller writes at most i32::MAX elements
    /// in practice (a group's members).
    pub(crate) fn array_len(&mut self, len: usize, what: &'static str) {
        self.nullable_array_len(Some(len), what);
    }

    /// Writes a nullable array's count (`None`: null).
    pub(crate) fn nullable_array_len(&mut self, len: Option<usize>, what: &'static str) {
        const MAX: usize = i32::MAX as usize;
        if let Some(len) = len
            && len > MAX
        {
            self.too_long(what, len, MAX);
        }
        self.len_prefix(len.map(|n| n.min(MAX)), false);
    }
}
