// libFuzzer target for the RPC request validator (controller/validate.h).
// Each input is parsed as every request message type of meridian.proto (the
// input types of every method of every service) and each message that
// parses goes through ValidateRequest. Invariants checked: no crash; a
// refusal is INVALID_ARGUMENT with a message that names a field and stays
// short (values are quoted by QuoteInput, so a huge input cannot make a
// huge error); a message that passes has only UTF-8 text (checked again by
// serializing it and parsing it back, which must give the same message).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "controller/validate.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/message_differencer.h"
#include "meridian/v1/meridian.pb.h"

namespace {

using google::protobuf::Descriptor;
using google::protobuf::Message;

// The request types, once.
const std::vector<const Message*>& RequestPrototypes() {
  static const std::vector<const Message*>* out = [] {
    auto* v = new std::vector<const Message*>();
    const google::protobuf::FileDescriptor* file =
        meridian::v1::SubmitJobRequest::descriptor()->file();
    std::vector<const Descriptor*> seen;
    for (int s = 0; s < file->service_count(); ++s) {
      for (int m = 0; m < file->service(s)->method_count(); ++m) {
        const Descriptor* d = file->service(s)->method(m)->input_type();
        bool dup = false;
        for (const Descriptor* o : seen) dup |= o == d;
        if (dup) continue;
        seen.push_back(d);
        v->push_back(google::protobuf::MessageFactory::generated_factory()->GetPrototype(d));
      }
    }
    if (v->empty()) {
      std::fprintf(stderr, "no request types found\n");
      std::abort();
    }
    return v;
  }();
  return *out;
}

void Require(bool cond, const char* what) {
  if (!cond) {
    std::fprintf(stderr, "rpc validate fuzzer invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const Message* proto : RequestPrototypes()) {
    std::unique_ptr<Message> m(proto->New());
    if (!m->ParseFromArray(data, static_cast<int>(size))) continue;
    absl::Status st = meridian::controller::ValidateRequest(*m);
    if (!st.ok()) {
      Require(st.code() == absl::StatusCode::kInvalidArgument, "refusal is not INVALID_ARGUMENT");
      Require(st.message().find(": ") != absl::string_view::npos, "refusal names no field");
      Require(st.message().size() < 2048, "refusal message is long");
      continue;
    }
    std::string again;
    Require(m->SerializeToString(&again), "an accepted message does not serialize");
    std::unique_ptr<Message> back(proto->New());
    Require(back->ParseFromString(again), "an accepted message does not parse back");
    Require(google::protobuf::util::MessageDifferencer::Equals(*m, *back),
            "an accepted message changes through serialization");
  }
  return 0;
}
