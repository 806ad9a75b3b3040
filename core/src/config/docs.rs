//! The documentation's promises about configuration, checked against the code: every key in
//! `docs/configuration.md` is one the code reads and every key the code reads is documented,
//! with the documented defaults and ranges; the documents that quote the item limit quote the
//! code's default.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::*;

const CONFIGURATION: &str = include_str!("../../../docs/configuration.md");
const CONNECTIONS: &str = include_str!("../../../docs/connections.md");
const API: &str = include_str!("../../../docs/api.md");
const GATEWAY: &str = include_str!("../../../docs/gateway.md");

/// The dotted keys a `Deserialize` type reads: the fields of nested structs, down to the
/// values (maps, lists and scalars). Each is found by deserializing the type from a
/// deserializer that offers every field a struct asks for, with an empty value.
fn keys_of<T: for<'de> Deserialize<'de>>() -> BTreeSet<String> {
    let out = RefCell::new(BTreeSet::new());
    T::deserialize(Keys {
        prefix: String::new(),
        out: &out,
    })
    .expect("the recording deserializer fits every configuration type");
    out.into_inner()
}

struct Keys<'a> {
    prefix: String,
    out: &'a RefCell<BTreeSet<String>>,
}

impl Keys<'_> {
    fn leaf(&self) {
        self.out.borrow_mut().insert(self.prefix.clone());
    }
}

macro_rules! leaf {
    ($($method:ident => $visit:ident($value:expr)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.leaf();
            visitor.$visit($value)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Keys<'_> {
    type Error = de::value::Error;

    leaf! {
        deserialize_any => visit_str(""),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_identifier => visit_str(""),
        deserialize_bool => visit_bool(false),
        deserialize_u8 => visit_u64(1),
        deserialize_u16 => visit_u64(1),
        deserialize_u32 => visit_u64(1),
        deserialize_u64 => visit_u64(1),
        deserialize_i8 => visit_i64(1),
        deserialize_i16 => visit_i64(1),
        deserialize_i32 => visit_i64(1),
        deserialize_i64 => visit_i64(1),
        deserialize_f32 => visit_f64(1.0),
        deserialize_f64 => visit_f64(1.0),
        deserialize_char => visit_char('x'),
        deserialize_bytes => visit_bytes(b""),
        deserialize_byte_buf => visit_bytes(b""),
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.leaf();
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.leaf();
        visitor.visit_seq(Empty)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.leaf();
        visitor.visit_map(Empty)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(Fields {
            keys: self,
            fields: fields.iter(),
            current: "",
        })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom(format!(
            "`{}` is an enum; read configuration values as text",
            self.prefix
        )))
    }
}

struct Empty;

impl<'de> SeqAccess<'de> for Empty {
    type Error = de::value::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        _: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        Ok(None)
    }
}

impl<'de> MapAccess<'de> for Empty {
    type Error = de::value::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        _: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        Ok(None)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("no value without a key"))
    }
}

struct Fields<'a> {
    keys: Keys<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = de::value::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize((*field).into_deserializer()).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let prefix = if self.keys.prefix.is_empty() {
            self.current.to_owned()
        } else {
            format!("{}.{}", self.keys.prefix, self.current)
        };
        seed.deserialize(Keys {
            prefix,
            out: self.keys.out,
        })
    }
}

/// The `toml` block under "## Keys".
fn documented_block() -> &'static str {
    CONFIGURATION
        .split_once("## Keys")
        .and_then(|(_, rest)| rest.split_once("```toml\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("docs/configuration.md has a toml block under ## Keys")
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten(&key, t, out),
            _ => {
                out.insert(key);
            }
        }
    }
}

#[test]
fn every_documented_key_is_read_and_every_read_key_is_documented() {
    let table: toml::Table = toml::from_str(documented_block()).unwrap();
    let mut documented = BTreeSet::new();
    flatten("", &table, &mut documented);
    documented.retain(|k| !k.starts_with("connections."));
    let mut read = keys_of::<RawSettings>();
    assert!(read.remove("connections"), "{read:?}");
    assert_eq!(
        documented, read,
        "docs/configuration.md's keys (left) against the code's (right)"
    );

    // The documented block is itself a valid file: every value has its key's type.
    let raw: RawSettings = toml::from_str(documented_block()).unwrap();
    assert!(!raw.connections.is_empty());
}

#[test]
fn every_key_of_a_declared_connection_is_documented() {
    let keys = keys_of::<RawConnection>();
    assert!(keys.len() > 10, "{keys:?}");
    for key in keys {
        let flag = format!("--{}", key.replace('_', "-"));
        let in_table = format!("`{key}`");
        assert!(
            CONNECTIONS.contains(&flag) || CONFIGURATION.contains(&in_table),
            "`{key}` of a [connections.NAME] table is neither `exgate connection add {flag}` in \
             docs/connections.md nor in docs/configuration.md's table"
        );
    }
}

#[test]
fn documented_defaults_and_ranges_are_the_codes() {
    let table: toml::Table = toml::from_str(documented_block()).unwrap();
    let value = |path: &str| {
        let mut v = &table[path.split('.').next().unwrap()];
        for part in path.split('.').skip(1) {
            v = &v[part];
        }
        v.clone()
    };
    let int = |path: &str| u64::try_from(value(path).as_integer().unwrap()).unwrap();
    let governor = crate::governor::GovernorPolicy::default();
    let limits = crate::pipeline::Limits::default();
    assert_eq!(int("graph.concurrent"), governor.concurrent as u64);
    assert_eq!(int("graph.requests"), u64::from(governor.requests));
    assert_eq!(int("graph.window_secs"), governor.window.as_secs());
    let ews = crate::governor::GovernorPolicy::ews_default();
    assert_eq!(int("ews.concurrent"), ews.concurrent as u64);
    assert_eq!(int("ews.requests"), u64::from(ews.requests));
    assert_eq!(int("ews.window_secs"), ews.window.as_secs());
    let item_mb = limits.max_item_bytes / (1024 * 1024);
    assert_eq!(int("limits.max_item_mb"), item_mb);
    assert_eq!(int("limits.max_wait_secs"), limits.max_wait.as_secs());
    assert_eq!(value("server.listen").as_str(), Some(DEFAULT_LISTEN));

    let block = documented_block();
    assert!(
        block.contains(&format!("({}-{})", MAX_ITEM_MB.start(), MAX_ITEM_MB.end())),
        "the documented range of limits.max_item_mb"
    );
    assert!(
        block.contains(&format!("(0-{MAX_WAIT_SECS})")),
        "the documented range of limits.max_wait_secs"
    );

    for (name, text) in [("docs/api.md", API), ("docs/gateway.md", GATEWAY)] {
        assert!(
            text.contains(&format!("default {item_mb} MiB"))
                || text.contains(&format!("{item_mb} MiB by default")),
            "{name} quotes the item limit's default"
        );
    }
}
