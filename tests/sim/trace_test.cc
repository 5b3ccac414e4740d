// Trace readers: philly, openb, Meridian csv/jsonl and ReadTrace dispatch,
// on small fixtures written to a temp dir, plus the real data sets when present.
#include "sim/trace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

namespace meridian::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string WriteFixture(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream out(path, std::ios::binary);
  out << content;
  return path;
}

std::string Msg(const absl::StatusOr<Trace>& trace) {
  return std::string(trace.status().message());
}

TraceOptions Lenient() {
  TraceOptions o;
  o.lenient = true;
  return o;
}

// ---------------------------------------------------------------- philly

constexpr char kPhillyHeader[] = "timestamp,duration,num_gpus,gpu_time,cluster\n";

TEST(PhillyTraceTest, SortsByTimeAndMapsShapes) {
  const std::string path =
      WriteFixture("philly_basic.csv", std::string(kPhillyHeader) +
                                           "2017-10-01 00:00:10,100.0,1,100.0,aaa\n"
                                           "2017-10-01 00:00:00,50.5,16,808.0,bbb\n"
                                           "2017-10-01 00:01:00,20.0,12,240.0,aaa\n"
                                           "2017-10-01 00:00:05,30.0,8,240.0,ccc\n"
                                           "\n");
  absl::StatusOr<Trace> trace = ReadPhillyTrace(path, TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->jobs.size(), 4u);
  EXPECT_EQ(trace->source, "philly:" + path);
  EXPECT_EQ(trace->skipped, 0);
  const auto& j = trace->jobs;
  EXPECT_EQ(j[0].submit_s, 0);
  EXPECT_EQ(j[1].submit_s, 5);
  EXPECT_EQ(j[2].submit_s, 10);
  EXPECT_EQ(j[3].submit_s, 60);
  EXPECT_EQ(j[0].name, "philly-0");
  EXPECT_EQ(j[3].name, "philly-3");
  // 16 GPUs: 2 replicas x 8.
  EXPECT_EQ(j[0].replicas, 2);
  EXPECT_EQ(j[0].shape.gpus, 8);
  EXPECT_EQ(j[0].shape.cpu_milli, 8 * 4000);
  EXPECT_EQ(j[0].shape.memory_mib, 8 * 16384);
  EXPECT_DOUBLE_EQ(j[0].duration_s, 50.5);
  EXPECT_EQ(j[0].tenant, "bbb");
  // 8 GPUs fit one replica.
  EXPECT_EQ(j[1].replicas, 1);
  EXPECT_EQ(j[1].shape.gpus, 8);
  // 1 GPU.
  EXPECT_EQ(j[2].replicas, 1);
  EXPECT_EQ(j[2].shape.gpus, 1);
  EXPECT_EQ(j[2].shape.cpu_milli, 4000);
  EXPECT_FALSE(j[2].shape.fractional());
  // 12 GPUs: ceil(12/8) = 2 replicas of 8.
  EXPECT_EQ(j[3].replicas, 2);
  EXPECT_EQ(j[3].shape.gpus, 8);
}

TEST(PhillyTraceTest, TiesKeepInputOrderAndCalendarMathIsUtc) {
  const std::string path = WriteFixture("philly_ties.csv", std::string(kPhillyHeader) +
                                                               "2018-01-01 00:00:00,1,1,1,x\n"
                                                               "2017-12-31 23:59:59,2,1,2,x\n"
                                                               "2018-01-01 00:00:00,3,1,3,x\n"
                                                               "2018-03-01 00:00:00,4,1,4,x\n");
  absl::StatusOr<Trace> trace = ReadPhillyTrace(path, TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->jobs.size(), 4u);
  EXPECT_EQ(trace->jobs[0].duration_s, 2);
  EXPECT_EQ(trace->jobs[1].submit_s, 1);
  EXPECT_EQ(trace->jobs[1].duration_s, 1);  // input order among equal times
  EXPECT_EQ(trace->jobs[2].duration_s, 3);
  // Jan (31) + Feb 2018 (28 days) after 2018-01-01, plus the first second.
  EXPECT_EQ(trace->jobs[3].submit_s, 1 + (31 + 28) * 86400.0);
}

TEST(PhillyTraceTest, CustomGangSize) {
  const std::string path = WriteFixture(
      "philly_gang.csv", std::string(kPhillyHeader) + "2017-10-01 00:00:00,10,6,60,x\n");
  TraceOptions options;
  options.gpus_per_replica = 4;
  options.cpu_milli_per_gpu = 2000;
  options.memory_mib_per_gpu = 1000;
  absl::StatusOr<Trace> trace = ReadPhillyTrace(path, options);
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->jobs[0].replicas, 2);
  EXPECT_EQ(trace->jobs[0].shape.gpus, 4);
  EXPECT_EQ(trace->jobs[0].shape.cpu_milli, 8000);
  EXPECT_EQ(trace->jobs[0].shape.memory_mib, 4000);
}

TEST(PhillyTraceTest, StrictErrorsNameFileAndLine) {
  struct Case {
    std::string row;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"2017-13-01 00:00:00,10,1,10,x", "invalid timestamp"},
      {"yesterday,10,1,10,x", "invalid timestamp"},
      {"2017-10-01 00:00:00,abc,1,10,x", "invalid duration"},
      {"2017-10-01 00:00:00,0,1,0,x", "invalid duration"},
      {"2017-10-01 00:00:00,-5,1,0,x", "invalid duration"},
      {"2017-10-01 00:00:00,10,0,0,x", "num_gpus '0' out of range"},
      {"2017-10-01 00:00:00,10,1.5,0,x", "num_gpus '1.5' out of range"},
      {"2017-10-01 00:00:00,10,1", "expected 5 columns, got 3"},
  };
  for (const Case& c : cases) {
    const std::string path =
        WriteFixture("philly_bad.csv",
                     std::string(kPhillyHeader) + "2017-10-01 00:00:00,10,1,10,x\n" + c.row + "\n");
    absl::StatusOr<Trace> trace = ReadPhillyTrace(path, TraceOptions());
    ASSERT_FALSE(trace.ok()) << c.row;
    EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(trace), StartsWith(path + ":3: ")) << c.row;
    EXPECT_THAT(Msg(trace), HasSubstr(c.reason)) << c.row;

    absl::StatusOr<Trace> lenient = ReadPhillyTrace(path, Lenient());
    ASSERT_TRUE(lenient.ok()) << lenient.status();
    EXPECT_EQ(lenient->jobs.size(), 1u);
    EXPECT_EQ(lenient->skipped, 1);
    ASSERT_EQ(lenient->skipped_examples.size(), 1u);
    EXPECT_THAT(lenient->skipped_examples[0], StartsWith(path + ":3: "));
  }
}

TEST(PhillyTraceTest, MissingColumnIsFatalInBothModes) {
  const std::string path =
      WriteFixture("philly_nodur.csv", "timestamp,num_gpus,cluster\n2017-10-01 00:00:00,1,x\n");
  for (const TraceOptions& options : {TraceOptions(), Lenient()}) {
    absl::StatusOr<Trace> trace = ReadPhillyTrace(path, options);
    ASSERT_FALSE(trace.ok());
    EXPECT_EQ(Msg(trace), path + ": missing column 'duration' in header");
  }
}

TEST(PhillyTraceTest, EmptyTraceIsAnErrorInBothModes) {
  const std::string header_only = WriteFixture("philly_empty.csv", kPhillyHeader);
  const std::string all_bad =
      WriteFixture("philly_allbad.csv", std::string(kPhillyHeader) + "x,y,z,w,v\n");
  for (const TraceOptions& options : {TraceOptions(), Lenient()}) {
    absl::StatusOr<Trace> trace = ReadPhillyTrace(header_only, options);
    ASSERT_FALSE(trace.ok());
    EXPECT_THAT(Msg(trace), HasSubstr("no jobs"));
  }
  absl::StatusOr<Trace> trace = ReadPhillyTrace(all_bad, Lenient());
  ASSERT_FALSE(trace.ok());
  EXPECT_THAT(Msg(trace), HasSubstr("no jobs"));
  EXPECT_THAT(Msg(trace), HasSubstr("1 lines skipped"));
}

TEST(PhillyTraceTest, LenientKeepsFirstFiveExamplesAndCountsAll) {
  std::string content = kPhillyHeader;
  for (int i = 0; i < 8; ++i) content += "garbage\n";
  content += "2017-10-01 00:00:00,10,1,10,x\n";
  const std::string path = WriteFixture("philly_garbage.csv", content);
  absl::StatusOr<Trace> trace = ReadPhillyTrace(path, Lenient());
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->jobs.size(), 1u);
  EXPECT_EQ(trace->skipped, 8);
  ASSERT_EQ(trace->skipped_examples.size(), 5u);
  EXPECT_THAT(trace->skipped_examples[0], StartsWith(path + ":2: "));
  EXPECT_THAT(trace->skipped_examples[4], StartsWith(path + ":6: "));
}

TEST(PhillyTraceTest, LimitKeepsEarliestJobs) {
  const std::string path = WriteFixture("philly_limit.csv", std::string(kPhillyHeader) +
                                                                "2017-10-01 00:00:30,1,1,1,x\n"
                                                                "2017-10-01 00:00:10,2,1,2,x\n"
                                                                "2017-10-01 00:00:20,3,1,3,x\n");
  TraceOptions options;
  options.limit = 2;
  absl::StatusOr<Trace> trace = ReadPhillyTrace(path, options);
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->jobs.size(), 2u);
  EXPECT_EQ(trace->jobs[0].duration_s, 2);
  EXPECT_EQ(trace->jobs[1].duration_s, 3);
}

// ---------------------------------------------------------------- openb

constexpr char kOpenbHeader[] =
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n";

TEST(OpenbTraceTest, MapsShapesTenantsAndGpuTypes) {
  const std::string path = WriteFixture(
      "openb_basic.csv", std::string(kOpenbHeader) +
                             "pod-a,12000,16384,1,1000,,LS,Running,100,600,100\n"
                             "pod-b,6000,12288,1,460,V100M16|T4,BE,Running,50,150,50\n"
                             "pod-c,32000,65536,8,1000,,Burstable,Succeeded,200,1200,201\n"
                             "pod-d,8000,30517,0,0,,LS,Running,300,400,300\n"
                             "pod-e,8000,30517,1,230,,BE,Pending,400,500,\n"
                             "pod-z,8000,30517,1,230,,BE,Pending,450,450,\n");
  absl::StatusOr<Trace> trace = ReadOpenbTrace(path, TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->source, "openb:" + path);
  ASSERT_EQ(trace->jobs.size(), 5u);
  // The zero-length pod is dropped (counted) even in strict mode.
  EXPECT_EQ(trace->skipped, 1);
  ASSERT_EQ(trace->skipped_examples.size(), 1u);
  EXPECT_THAT(trace->skipped_examples[0], StartsWith(path + ":7: "));
  const auto& j = trace->jobs;
  EXPECT_EQ(j[0].name, "pod-b");
  EXPECT_EQ(j[0].submit_s, 0);  // relative to the first creation_time (50)
  EXPECT_EQ(j[0].duration_s, 100);
  EXPECT_TRUE(j[0].shape.fractional());
  EXPECT_EQ(j[0].shape.gpu_milli, 460);
  EXPECT_EQ(j[0].shape.cpu_milli, 6000);
  EXPECT_EQ(j[0].shape.memory_mib, 12288);
  EXPECT_EQ(j[0].tenant, "BE");
  EXPECT_EQ(j[0].gpu_types, (std::vector<std::string>{"V100M16", "T4"}));
  EXPECT_EQ(j[1].name, "pod-a");
  EXPECT_EQ(j[1].submit_s, 50);
  EXPECT_FALSE(j[1].shape.fractional());
  EXPECT_EQ(j[1].shape.gpus, 1);
  EXPECT_TRUE(j[1].gpu_types.empty());
  EXPECT_EQ(j[2].name, "pod-c");
  EXPECT_EQ(j[2].replicas, 1);
  EXPECT_EQ(j[2].shape.gpus, 8);
  EXPECT_EQ(j[2].shape.gpu_milli, 1000);
  EXPECT_EQ(j[2].tenant, "Burstable");
  EXPECT_EQ(j[3].name, "pod-d");
  EXPECT_EQ(j[3].shape.gpus, 0);
  EXPECT_EQ(j[3].shape.total_gpu_milli(), 0);
  // A Pending pod without scheduled_time is still a job.
  EXPECT_EQ(j[4].name, "pod-e");
  EXPECT_EQ(j[4].duration_s, 100);
}

TEST(OpenbTraceTest, BadRowsFailStrictAndAreSkippedLeniently) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"pod-x,8000,30517,1,230,,BE,Running,400,,", "empty deletion_time"},
      {"pod-x,8000,30517,1,230,,BE,Running,400,300,", "deletion_time before creation_time"},
      {"pod-x,8000,30517,-1,0,,BE,Running,400,500,", "num_gpu '-1' out of range"},
      {"pod-x,8000,30517,1,0,,BE,Running,400,500,", "gpu_milli '0' out of range 1..1000"},
      {"pod-x,8000,30517,1,1500,,BE,Running,400,500,", "gpu_milli '1500'"},
      {"pod-x,lots,30517,1,100,,BE,Running,400,500,", "invalid cpu_milli 'lots'"},
      {"pod-x,8000,30517,1,100,,BE,Running,-4,500,", "invalid creation_time"},
      {"pod-x,8000", "expected 11 columns, got 2"},
  };
  for (const auto& [row, reason] : cases) {
    const std::string path = WriteFixture(
        "openb_bad.csv",
        std::string(kOpenbHeader) + "pod-ok,1000,1024,1,1000,,LS,Running,0,10,0\n" + row + "\n");
    absl::StatusOr<Trace> trace = ReadOpenbTrace(path, TraceOptions());
    ASSERT_FALSE(trace.ok()) << row;
    EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(trace), StartsWith(path + ":3: ")) << row;
    EXPECT_THAT(Msg(trace), HasSubstr(reason)) << row;
    absl::StatusOr<Trace> lenient = ReadOpenbTrace(path, Lenient());
    ASSERT_TRUE(lenient.ok()) << lenient.status();
    EXPECT_EQ(lenient->jobs.size(), 1u);
    EXPECT_EQ(lenient->skipped, 1);
  }
}

TEST(OpenbTraceTest, MissingColumn) {
  const std::string path = WriteFixture("openb_nocol.csv", "name,cpu_milli\npod,1\n");
  absl::StatusOr<Trace> trace = ReadOpenbTrace(path, TraceOptions());
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(Msg(trace), path + ": missing column 'memory_mib' in header");
}

// ---------------------------------------------------------------- csv

TEST(CsvTraceTest, ColumnsInAnyOrderWithDefaultsAndUnits) {
  const std::string path =
      WriteFixture("meridian.csv",
                   "priority,gpu_types,tenant,memory,cpu,gpus,replicas,duration_s,submit_s,name\r\n"
                   "5,a100|h100,team-a,64Gi,16,2,4,3600,0,train\r\n"
                   ",,,,,,,60,10,\"eval, small\"\r\n"
                   "\r\n"
                   ",,,512Mi,500m,0.25,,30,10,notebook\r\n"
                   ",,,2048,,0,,30,20,cpu-job\r\n");
  absl::StatusOr<Trace> trace = ReadCsvTrace(path, TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->source, "csv:" + path);
  ASSERT_EQ(trace->jobs.size(), 4u);
  const auto& j = trace->jobs;
  EXPECT_EQ(j[0].name, "train");
  EXPECT_EQ(j[0].replicas, 4);
  EXPECT_EQ(j[0].shape.gpus, 2);
  EXPECT_EQ(j[0].shape.cpu_milli, 16000);
  EXPECT_EQ(j[0].shape.memory_mib, 64 * 1024);
  EXPECT_EQ(j[0].tenant, "team-a");
  EXPECT_EQ(j[0].gpu_types, (std::vector<std::string>{"a100", "h100"}));
  EXPECT_EQ(j[0].priority, 5);
  EXPECT_EQ(j[0].duration_s, 3600);
  // Defaults: 1 replica, 1 GPU, 4 cores and 16Gi per GPU.
  EXPECT_EQ(j[1].name, "eval, small");
  EXPECT_EQ(j[1].submit_s, 10);
  EXPECT_EQ(j[1].replicas, 1);
  EXPECT_EQ(j[1].shape.gpus, 1);
  EXPECT_EQ(j[1].shape.gpu_milli, 1000);
  EXPECT_EQ(j[1].shape.cpu_milli, 4000);
  EXPECT_EQ(j[1].shape.memory_mib, 16384);
  EXPECT_EQ(j[1].tenant, "");
  EXPECT_TRUE(j[1].gpu_types.empty());
  // Fractional GPU.
  EXPECT_TRUE(j[2].shape.fractional());
  EXPECT_EQ(j[2].shape.gpu_milli, 250);
  EXPECT_EQ(j[2].shape.cpu_milli, 500);
  EXPECT_EQ(j[2].shape.memory_mib, 512);
  // CPU-only job: 1 core by default.
  EXPECT_EQ(j[3].shape.gpus, 0);
  EXPECT_EQ(j[3].shape.cpu_milli, 1000);
  EXPECT_EQ(j[3].shape.memory_mib, 2048);
}

TEST(CsvTraceTest, MissingRequiredColumn) {
  const std::string path = WriteFixture("csv_nodur.csv", "name,submit_s\njob,0\n");
  absl::StatusOr<Trace> trace = ReadCsvTrace(path, TraceOptions());
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Msg(trace), path + ": missing column 'duration_s' in header");
}

TEST(CsvTraceTest, UnknownColumnIsRejected) {
  const std::string path =
      WriteFixture("csv_unknown.csv", "name,submit_s,duration_s,gpu\njob,0,1,2\n");
  absl::StatusOr<Trace> trace = ReadCsvTrace(path, TraceOptions());
  ASSERT_FALSE(trace.ok());
  EXPECT_THAT(Msg(trace), HasSubstr("unknown column 'gpu'"));
}

TEST(CsvTraceTest, BadRows) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"b,5,10,1", "before the previous job's 10"},
      {"b,-1,10,1", "invalid submit_s '-1'"},
      {"b,20,0,1", "invalid duration_s '0'"},
      {"b,20,-3,1", "invalid duration_s '-3'"},
      {"b,20,abc,1", "invalid duration_s 'abc'"},
      {"b,20,10,1.5", "gpus '1.5' must be a whole number"},
      {"b,20,10,-1", "gpus '-1' out of range"},
      {"b,20,10,5000", "gpus '5000' out of range"},
      {"b,20,10", "expected 4 columns, got 3"},
      {",20,10,1", "empty name"},
      {"\"b,20,10,1", "unterminated quoted field"},
  };
  for (const auto& [row, reason] : cases) {
    const std::string path = WriteFixture(
        "csv_bad.csv", "name,submit_s,duration_s,gpus\na,10,10,1\n" + row + "\nc,30,10,1\n");
    absl::StatusOr<Trace> trace = ReadCsvTrace(path, TraceOptions());
    ASSERT_FALSE(trace.ok()) << row;
    EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(trace), StartsWith(path + ":3: ")) << row;
    EXPECT_THAT(Msg(trace), HasSubstr(reason)) << row;
    absl::StatusOr<Trace> lenient = ReadCsvTrace(path, Lenient());
    ASSERT_TRUE(lenient.ok()) << lenient.status();
    EXPECT_EQ(lenient->jobs.size(), 2u) << row;
    EXPECT_EQ(lenient->skipped, 1) << row;
  }
}

// ---------------------------------------------------------------- jsonl

// Elastic jobs and goodput applications: model, batch_size, min/max_replicas
// and min/max_batch, in both formats; inconsistent ranges name the line.
TEST(CsvTraceTest, ElasticRangesAndModel) {
  const std::string path = WriteFixture(
      "csv_elastic.csv",
      "name,submit_s,duration_s,model,batch_size,min_replicas,max_replicas,min_batch,max_batch\n"
      "a,0,10,cifar10,128,2,16,128,4096\n"
      "b,1,10,,,,,,\n");
  absl::StatusOr<Trace> trace = ReadCsvTrace(path, TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  const TraceJob& a = trace->jobs[0];
  EXPECT_EQ(a.model, "cifar10");
  EXPECT_EQ(a.batch_size, 128);
  EXPECT_EQ(a.elastic.min_replicas, 2);
  EXPECT_EQ(a.elastic.max_replicas, 16);
  EXPECT_EQ(a.elastic.min_batch, 128);
  EXPECT_EQ(a.elastic.max_batch, 4096);
  EXPECT_EQ(trace->jobs[1].elastic.max_replicas, 0);  // rigid
  const std::string jsonl = WriteFixture(
      "elastic.jsonl",
      "{\"name\":\"a\",\"submit_s\":0,\"duration_s\":5,\"model\":\"bert\",\"max_replicas\":8}\n");
  trace = ReadJsonlTrace(jsonl, TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->jobs[0].model, "bert");
  EXPECT_EQ(trace->jobs[0].elastic.min_replicas, 1);
  EXPECT_EQ(trace->jobs[0].elastic.max_replicas, 8);
  for (const auto& [row, want] : std::vector<std::pair<std::string, std::string>>{
           {"x,0,1,,,4,2,,", "min_replicas 4 is above max_replicas 2"},
           {"x,0,1,,,2,,,", "need max_replicas"},
           {"x,0,1,,0,,,,", "batch_size '0' out of range"},
           {"x,0,1,,,,4,64,32", "min_batch 64 is above max_batch 32"}}) {
    const std::string bad = WriteFixture("csv_elastic_bad.csv",
                                         "name,submit_s,duration_s,model,batch_size,min_replicas,"
                                         "max_replicas,min_batch,max_batch\n" +
                                             row + "\n");
    trace = ReadCsvTrace(bad, TraceOptions());
    ASSERT_FALSE(trace.ok()) << row;
    EXPECT_THAT(Msg(trace), HasSubstr("csv_elastic_bad.csv:2:")) << row;
    EXPECT_THAT(Msg(trace), HasSubstr(want)) << row;
  }
}

TEST(JsonlTraceTest, SameFieldsAsCsv) {
  const std::string path =
      WriteFixture("meridian.jsonl",
                   "{\"name\": \"train\", \"submit_s\": 0, \"duration_s\": 3600, \"replicas\": 4, "
                   "\"gpus\": 2, \"cpu\": 16, \"memory\": \"64Gi\", \"tenant\": \"team-a\", "
                   "\"gpu_types\": [\"a100\", \"h100\"], \"priority\": 5}\n"
                   "\n"
                   "{\"name\": \"nb\", \"submit_s\": 10.5, \"duration_s\": 30, \"gpus\": 0.5, "
                   "\"memory\": 1024, \"gpu_types\": \"l4\", \"tenant\": null}\n");
  absl::StatusOr<Trace> trace = ReadJsonlTrace(path, TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->source, "jsonl:" + path);
  ASSERT_EQ(trace->jobs.size(), 2u);
  const auto& j = trace->jobs;
  EXPECT_EQ(j[0].replicas, 4);
  EXPECT_EQ(j[0].shape.gpus, 2);
  EXPECT_EQ(j[0].shape.cpu_milli, 16000);
  EXPECT_EQ(j[0].shape.memory_mib, 65536);
  EXPECT_EQ(j[0].gpu_types, (std::vector<std::string>{"a100", "h100"}));
  EXPECT_EQ(j[0].priority, 5);
  EXPECT_EQ(j[0].tenant, "team-a");
  EXPECT_DOUBLE_EQ(j[1].submit_s, 10.5);
  EXPECT_EQ(j[1].shape.gpu_milli, 500);
  EXPECT_EQ(j[1].shape.cpu_milli, 2000);  // 4 cores per GPU x 0.5
  EXPECT_EQ(j[1].shape.memory_mib, 1024);
  EXPECT_EQ(j[1].gpu_types, (std::vector<std::string>{"l4"}));
  EXPECT_EQ(j[1].tenant, "");
}

TEST(JsonlTraceTest, BadLines) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json at all", "not a JSON object"},
      {"[1, 2]", "not a JSON object"},
      {"{\"name\": \"b\", \"submit_s\": 5}", "missing field 'duration_s'"},
      {"{\"name\": \"b\", \"submit_s\": \"5\", \"duration_s\": 1}", "must be a number"},
      {"{\"name\": 3, \"submit_s\": 5, \"duration_s\": 1}", "must be a string"},
      {"{\"name\": \"b\", \"submit_s\": 5, \"duration_s\": 1, \"gpu\": 1}", "unknown field 'gpu'"},
      {"{\"name\": \"b\", \"submit_s\": 1, \"duration_s\": 1}", "before the previous job's 2"},
      {"{\"name\": \"b\", \"submit_s\": 5, \"duration_s\": 0}", "invalid duration_s"},
  };
  for (const auto& [row, reason] : cases) {
    const std::string path = WriteFixture(
        "bad.jsonl", "{\"name\": \"a\", \"submit_s\": 2, \"duration_s\": 1}\n" + row + "\n");
    absl::StatusOr<Trace> trace = ReadJsonlTrace(path, TraceOptions());
    ASSERT_FALSE(trace.ok()) << row;
    EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(trace), StartsWith(path + ":2: ")) << row;
    EXPECT_THAT(Msg(trace), HasSubstr(reason)) << row;
    absl::StatusOr<Trace> lenient = ReadJsonlTrace(path, Lenient());
    ASSERT_TRUE(lenient.ok()) << lenient.status();
    EXPECT_EQ(lenient->jobs.size(), 1u);
    EXPECT_EQ(lenient->skipped, 1);
  }
}

// ---------------------------------------------------------------- ReadTrace

TEST(ReadTraceTest, DispatchesByKind) {
  const std::string csv = WriteFixture("dispatch.csv", "name,submit_s,duration_s\na,0,5\n");
  absl::StatusOr<Trace> trace = ReadTrace("csv:" + csv, TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->source, "csv:" + csv);
  EXPECT_EQ(trace->jobs.size(), 1u);

  absl::StatusOr<Trace> synthetic = ReadTrace("synthetic:25", TraceOptions());
  ASSERT_TRUE(synthetic.ok()) << synthetic.status();
  EXPECT_EQ(synthetic->jobs.size(), 25u);
  EXPECT_EQ(synthetic->source, "synthetic:25");
}

TEST(ReadTraceTest, RejectsUnknownKindsListingTheKnownOnes) {
  for (const std::string spec : {"slurm:/tmp/x", "philly", "", "csv:", "/tmp/file.csv"}) {
    absl::StatusOr<Trace> trace = ReadTrace(spec, TraceOptions());
    ASSERT_FALSE(trace.ok()) << spec;
    EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    for (const char* kind : {"philly", "openb", "csv", "jsonl", "pollux", "gavel", "synthetic"}) {
      EXPECT_THAT(Msg(trace), HasSubstr(kind)) << spec;
    }
  }
}

TEST(ReadTraceTest, RejectsBadSyntheticCounts) {
  for (const std::string spec : {"synthetic:0", "synthetic:-3", "synthetic:abc", "synthetic:1.5",
                                 "synthetic:", "synthetic:10000001"}) {
    absl::StatusOr<Trace> trace = ReadTrace(spec, TraceOptions());
    ASSERT_FALSE(trace.ok()) << spec;
    EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument) << spec;
  }
}

TEST(ReadTraceTest, MissingFileIsNotFound) {
  absl::StatusOr<Trace> trace =
      ReadTrace("philly:" + ::testing::TempDir() + "/does-not-exist.csv", TraceOptions());
  ASSERT_FALSE(trace.ok());
  EXPECT_EQ(trace.status().code(), absl::StatusCode::kNotFound);
}

// The examples in docs/traces.md must stay valid.
std::string DocBlock(const std::string& language) {
  std::ifstream in(std::string(MERIDIAN_SOURCE_DIR) + "/docs/traces.md");
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string fence = "```" + language + "\n";
  const size_t start = doc.find(fence);
  if (start == std::string::npos) return "";
  const size_t end = doc.find("```", start + fence.size());
  return doc.substr(start + fence.size(), end - start - fence.size());
}

TEST(DocsTest, ExamplesParse) {
  const std::string csv = DocBlock("csv");
  ASSERT_FALSE(csv.empty());
  absl::StatusOr<Trace> trace = ReadCsvTrace(WriteFixture("doc.csv", csv), TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->jobs.size(), 5u);
  const std::string jsonl = DocBlock("json");
  ASSERT_FALSE(jsonl.empty());
  trace = ReadJsonlTrace(WriteFixture("doc.jsonl", jsonl), TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->jobs.size(), 2u);
}

// ---------------------------------------------------------------- real data

std::string DataPath(const std::string& relative) {
  return std::string(MERIDIAN_SOURCE_DIR) + "/../shared/data/" + relative;
}

TEST(RealDataTest, PhillyLoadsStrictlyAndFast) {
  const std::string path = DataPath("philly-pollux/philly.csv.gz");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "real data absent: " << path;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Trace> trace = ReadTrace("philly:" + path, TraceOptions());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(trace.ok()) << trace.status();
  RecordProperty("read_seconds", std::to_string(seconds));
  std::printf("read %zu philly jobs in %.3f s\n", trace->jobs.size(), seconds);
  ASSERT_EQ(trace->jobs.size(), 82247u);
  EXPECT_EQ(trace->skipped, 0);
  EXPECT_EQ(trace->jobs.front().submit_s, 0);
  // 2017-09-04 10:30:41 .. 2017-12-22 08:02:11.
  EXPECT_EQ(trace->jobs.back().submit_s,
            109 * 86400.0 + (8 * 3600 + 2 * 60 + 11) - (10 * 3600 + 30 * 60 + 41));
  std::set<std::string> tenants;
  int64_t single_gpu = 0;
  int32_t max_replicas = 0;
  for (size_t i = 0; i < trace->jobs.size(); ++i) {
    const TraceJob& j = trace->jobs[i];
    if (i > 0) {
      ASSERT_LE(trace->jobs[i - 1].submit_s, j.submit_s);
    }
    ASSERT_GT(j.duration_s, 0);
    ASSERT_LE(j.shape.gpus, 8);
    tenants.insert(j.tenant);
    if (j.replicas == 1 && j.shape.gpus == 1) ++single_gpu;
    max_replicas = std::max(max_replicas, j.replicas);
  }
  EXPECT_EQ(tenants.size(), 15u);
  EXPECT_EQ(single_gpu, 76627);
  EXPECT_EQ(max_replicas, 16);  // 128 GPUs
}

TEST(RealDataTest, OpenbLoadsStrictly) {
  const std::string path = DataPath("alibaba-gpu-v2023-openb/openb_pod_list_default.csv");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "real data absent: " << path;
  absl::StatusOr<Trace> trace = ReadTrace("openb:" + path, TraceOptions());
  ASSERT_TRUE(trace.ok()) << trace.status();
  // 8152 pods; one was deleted at its creation instant and carries no work.
  EXPECT_EQ(trace->jobs.size(), 8151u);
  EXPECT_EQ(trace->skipped, 1);
  int64_t cpu_only = 0, fractional = 0, eight = 0;
  std::set<std::string> tenants;
  for (const TraceJob& j : trace->jobs) {
    ASSERT_GT(j.duration_s, 0);
    ASSERT_EQ(j.replicas, 1);
    cpu_only += j.shape.gpus == 0;
    fractional += j.shape.fractional();
    eight += j.shape.gpus == 8;
    tenants.insert(j.tenant);
  }
  EXPECT_EQ(cpu_only, 1088);
  EXPECT_EQ(eight, 44);
  EXPECT_EQ(fractional, 3077);
  EXPECT_EQ(tenants, (std::set<std::string>{"BE", "Burstable", "Guaranteed", "LS"}));
  EXPECT_EQ(trace->jobs.front().submit_s, 0);
}

}  // namespace
}  // namespace meridian::sim
