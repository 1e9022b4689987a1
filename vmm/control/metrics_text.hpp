// The monitor's figures for Prometheus (configs/control-schema.md, "Metrics"):
// the text exposition format, version 0.0.4 (prometheus.io/docs/instrumenting/
// exposition_formats, "Text-based format"), and what the Fleet shows in it.
//
// The format as written here:
//  - a family's samples come together, after one "# HELP name text" and one
//    "# TYPE name counter|gauge" (a family with no sample is left out);
//  - HELP text escapes backslash and line feed ("\\", "\n"); a label value
//    escapes backslash, double quote and line feed ("\\", "\"", "\n");
//  - names match [a-zA-Z_:][a-zA-Z0-9_:]* (metrics) and [a-zA-Z_][a-zA-Z0-9_]*
//    (labels); a counter's name ends in _total, a figure with a unit names it
//    in its base unit (_bytes, _seconds): Prometheus's naming practice;
//  - values as Go's ParseFloat reads them: integers in decimal, NaN, +Inf, -Inf;
//  - every line ends with a line feed, the last one too.
//
// Threads: an Exposition belongs to one thread; fleet_metrics() may be called
// from any thread (the Fleet locks), one pass over each running VM's pmap and
// over the access counters per call.
#pragma once
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vmm/monitor/fleet.hpp"

namespace disco::control {

/// What the endpoint's replies say they are (the 0.0.4 text format).
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { Counter, Gauge };

/// A sample's labels, (name, value) in the order they are written.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);
/// A label value between its double quotes.
std::string escape_label_value(std::string_view value);
/// A HELP line's text.
std::string escape_help(std::string_view text);
/// A sample's value: shortest text that reads back to the same double; NaN, +Inf, -Inf.
std::string metric_value(double value);

class MetricFamily {
public:
    MetricFamily(std::string name, MetricType type, std::string help)
        : name_(std::move(name)), type_(type), help_(std::move(help)) {}
    void add(const MetricLabels& labels, u64 value);
    void add(const MetricLabels& labels, double value);
    const std::string& name() const { return name_; }
    MetricType type() const { return type_; }
    /// HELP, TYPE and the samples; "" when there are none.
    std::string text() const;

private:
    void add_text(const MetricLabels& labels, std::string value);
    std::string name_;
    MetricType type_;
    std::string help_;
    std::string samples_;
};

/// The families of one scrape, in the order they were first declared.
class Exposition {
public:
    /// The family of this name: declared now, or the one declared before
    /// (so that its HELP and TYPE are written once, its samples together).
    /// The reference stays valid for the Exposition's life.
    MetricFamily& family(const std::string& name, MetricType type, const std::string& help);
    std::string text() const;

private:
    std::deque<MetricFamily> families_;
};

/// Every figure of the monitor's VMs, NUMA nodes, disk page cache and page
/// scanner (configs/control-schema.md lists the families and labels).
std::string fleet_metrics(monitor::Fleet& fleet);
}  // namespace disco::control
