#pragma once
// The JSON shapes of `paradit serve`'s answers that OpenAI clients parse: errors, models, image
// results and stream events, video objects. Only shapes here; the routes are in server.cpp.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "server/dispatcher.h"

namespace paradit::server {

using Json = nlohmann::json;

// {"error": {"message", "type", "param", "code"}} (param/code null when empty); the type follows
// the status as OpenAI's does (invalid_request_error, authentication_error, rate_limit_error,
// server_error).
Json error_body(int status, const std::string& message, const std::string& param = {},
                const std::string& code = {});

// What GET /v1/models lists: the one model this server serves.
struct ServedModel {
  std::string id;            // the folder name or --served_model_name
  std::string pipeline;      // model_index.json's class
  std::string kind;          // "image" or "video"
  int64_t created = 0;       // unix seconds (the server's start)
  std::string default_size;  // "WxH"
  Json limits;               // the operator's limits, by flag name
};
Json model_object(const ServedModel& model);

// "WxH" of a request.
std::string size_text(const ImageRequest& request);

// The OpenAI video object of a job of the videos API; "seconds" is the video's duration (frames /
// fps, the frame count on the VAE's grid nearest to what was asked). `ttl`: how long the MP4
// stays downloadable after the job ends.
Json video_object(const JobView& job, const std::string& model_id, double ttl);

// JSON text for an answer; never throws (invalid UTF-8 in a string becomes U+FFFD).
std::string json_text(const Json& j);

// One Server-Sent Event: "event: NAME\ndata: JSON\n\n".
std::string sse_event(const std::string& name, const Json& data);

}  // namespace paradit::server
