#include "server/openai_json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace paradit::server {

Json error_body(int status, const std::string& message, const std::string& param,
                const std::string& code) {
  const char* type = status == 401   ? "authentication_error"
                     : status == 429 ? "rate_limit_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? Json() : Json(param)},
            {"code", code.empty() ? Json() : Json(code)}}}};
}

Json model_object(const ServedModel& m) {
  return {{"id", m.id},
          {"object", "model"},
          {"created", m.created},
          {"owned_by", "paradit"},
          {"paradit",
           {{"pipeline", m.pipeline},
            {"kind", m.kind},
            {"default_size", m.default_size},
            {"limits", m.limits}}}};
}

std::string size_text(const ImageRequest& r) {
  return std::to_string(r.width) + "x" + std::to_string(r.height);
}

Json video_object(const JobView& job, const std::string& model_id, double ttl) {
  const char* status = "queued";
  int progress = 0;
  Json error;
  switch (job.status) {
    case JobStatus::kQueued:
      break;
    case JobStatus::kRunning:
      status = "in_progress";
      // The decode after the last step still takes a while: 99 % at most until the MP4 exists.
      progress = job.total > 0 ? std::min(99, job.step * 100 / job.total) : 0;
      break;
    case JobStatus::kSucceeded:
      status = "completed";
      progress = 100;
      break;
    case JobStatus::kFailed:
    case JobStatus::kCancelled:
    case JobStatus::kTimedOut:
      status = "failed";
      progress = job.total > 0 ? std::min(99, job.step * 100 / job.total) : 0;
      error = {{"code", status_name(job.status)}, {"message", job.error}};
      break;
  }
  std::string duration;
  if (job.request.num_frames && job.request.fps && *job.request.fps > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g",
                  static_cast<double>(*job.request.num_frames) / *job.request.fps);
    duration = buf;
  }
  const bool ended = job.finished > 0;
  Json v = {{"id", job.id},
            {"object", "video"},
            {"model", model_id},
            {"status", status},
            {"progress", progress},
            {"created_at", static_cast<int64_t>(job.created)},
            {"completed_at", ended ? Json(static_cast<int64_t>(job.finished)) : Json()},
            {"expires_at", job.status == JobStatus::kSucceeded
                               ? Json(static_cast<int64_t>(std::floor(job.finished + ttl)))
                               : Json()},
            {"size", size_text(job.request)},
            {"seconds", duration},
            {"prompt", job.request.prompt},
            {"remixed_from_video_id", Json()},
            {"error", error},
            // paradit's own: what was generated.
            {"num_frames", job.request.num_frames.value_or(0)},
            {"fps", job.request.fps.value_or(0.0)}};
  return v;
}

std::string json_text(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string sse_event(const std::string& name, const Json& data) {
  return "event: " + name + "\ndata: " + json_text(data) + "\n\n";
}

}  // namespace paradit::server
