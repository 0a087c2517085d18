//! A `tracing` subscriber that records every event, for the log suites (each alone in its
//! test binary: tracing caches callsite interest per process).

use std::sync::{Arc, Mutex};

/// One event: its level, target and fields (`str` fields as they are, others `Debug`).
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) level: tracing::Level,
    pub(crate) target: String,
    pub(crate) fields: Vec<(&'static str, String)>,
}

impl Event {
    /// The field `name`, if the event has it.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The target and every field as one line of text.
    pub(crate) fn text(&self) -> String {
        let fields: Vec<String> = self.fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
        format!("{} {}", self.target, fields.join(" "))
    }
}

/// Records every event (no span handling beyond what the trait requires).
#[derive(Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Recorder {
    /// What was recorded so far.
    pub(crate) fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(Vec<(&'static str, String)>);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push((field.name(), value.to_owned()));
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name(), format!("{value:?}")));
            }
        }
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let metadata = event.metadata();
        let recorded = Event { level: *metadata.level(), target: metadata.target().to_owned(), fields: fields.0 };
        self.0.lock().unwrap().push(recorded);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
