//! The suite: which sections run, in order.

use crate::*;

/// One section of the suite: its measurements, emitted as rows.
pub(crate) type Section = fn(Plan);

/// Runs every section, or only those whose name contains `only` (`--only calls`).
pub(crate) fn suite(plan: Plan, only: &str) {
    let wanted = |section: &str| section.contains(only);
    for transport in [Transport::Tcp, Transport::Unix] {
        if wanted("calls") {
            calls(plan, transport, Size::Small, "echo", small_arg());
            calls(plan, transport, Size::Large, "echo_bytes", large_arg());
        }
        if wanted("allocation-free-calls") {
            allocation_free_calls(plan, transport);
        }
        if wanted("aggregate") {
            aggregate(plan, transport);
        }
        if wanted("connect") {
            connect_and_call(plan, transport);
        }
    }
    let sections: [(&str, Section); 9] = [
        ("counter", counter_workload),
        ("store", store_operations),
        ("tasks", task_queues),
        ("workflows", workflows),
        ("peers", peers),
        ("workers", supervised_workers),
        ("redis", redis_backend),
        ("msgpack", msgpack_calls),
        ("memory", idle_memory),
    ];
    for (name, section) in sections {
        if wanted(name) {
            section(plan);
        }
    }
}
