//! Test-only: the keys `serde` reads into a type, found by asking the type itself. A derived `Deserialize` for a
//! struct names all its fields when it asks for a struct; this deserializer walks down one path of field names at a
//! time and writes down the fields it is told at the end of it, so a test can hold the build file's schema
//! (`lenient.rs`) against the structs that read it, and a key added to one and not the other fails.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, Visitor};

/// Every path of keys `T` reads, depth first, each with whether a struct is read there (a section).
pub(super) fn paths<T: DeserializeOwned>() -> Vec<(String, bool)> {
    let mut out = Vec::new();
    walk::<T>(&mut Vec::new(), &mut out);
    out
}

fn walk<T: DeserializeOwned>(path: &mut Vec<&'static str>, out: &mut Vec<(String, bool)>) {
    let Some(fields) = fields_at::<T>(path) else {
        return;
    };
    for field in fields {
        path.push(field);
        let section = fields_at::<T>(path).is_some();
        out.push((path.join("."), section));
        walk::<T>(path, out);
        path.pop();
    }
}

/// The fields of the struct `T` reads at `path`, or `None` when what is read there is not a struct.
fn fields_at<T: DeserializeOwned>(path: &[&'static str]) -> Option<&'static [&'static str]> {
    let found = RefCell::new(None);
    // The walk ends in an error on purpose (the fields it did not visit are missing); what counts is what it saw.
    let _ = T::deserialize(Tracer {
        path,
        found: &found,
    });
    found.into_inner()
}

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Stop
    }
}

struct Tracer<'a> {
    /// The keys still to go down.
    path: &'a [&'static str],
    found: &'a RefCell<Option<&'static [&'static str]>>,
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => {
                *self.found.borrow_mut() = Some(fields);
                Err(Stop)
            }
            Some((key, rest)) => visitor.visit_map(OneKey {
                key: Some(key),
                rest,
                found: self.found,
            }),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct seq
        tuple tuple_struct map enum identifier ignored_any
    }
}

/// A map of the one key the walk goes down.
struct OneKey<'a> {
    key: Option<&'static str>,
    rest: &'a [&'static str],
    found: &'a RefCell<Option<&'static [&'static str]>>,
}

impl<'de> MapAccess<'de> for OneKey<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed
                .deserialize(de::value::BorrowedStrDeserializer::new(key))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        seed.deserialize(Tracer {
            path: self.rest,
            found: self.found,
        })
    }
}
