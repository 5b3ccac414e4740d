// Output helpers shared by the client commands (`job`, `node`, `region`,
// `endpoint`): state names, tables, ages, JSON of protos, and the exit code
// and message for a failed call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <functional>

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include "CLI/CLI.hpp"
#include "meridian/v1/meridian.pb.h"

namespace meridian::cli {

const char* JobStateName(int state);
const char* ReplicaStateName(int state);
bool FinalState(int state);
std::string ToJson(const google::protobuf::Message& m);  // one line
void PrintTable(const std::vector<std::vector<std::string>>& rows);
std::string Age(double unix_s);  // "12s", "3m", ...
std::string Cpu(int64_t milli);
std::string Mem(int64_t mib);
// Prints "meridian WHAT: code: message" and returns the exit code.
int Fail(const std::string& what, const grpc::Status& st);

struct ClientConfig;
// --controller, --token-file, --data-dir, -o, --timeout.
void AddClientFlags(CLI::App* cmd, ClientConfig* c);
// `meridian endpoint get` output (cmd_endpoint.cc).
void PrintEndpoint(const v1::Endpoint& e);
// The serving phase of `meridian dev --demo`: apply an endpoint spec, wait for
// its replicas, start a gateway (child process), send it held-out samples.
struct ClientConfig;
int RunDemoEndpoint(const std::string& file, const std::string& text, const ClientConfig& client);
// `meridian endpoint ...` (cmd_endpoint.cc).
void AddEndpointCommands(CLI::App& app, std::function<int()>* action);
// `meridian user|token|secret|audit|whoami` (cmd_identity.cc).
void AddIdentityCommands(CLI::App& app, std::function<int()>* action);

}  // namespace meridian::cli
