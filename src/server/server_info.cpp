// The parts of server/server.h that `paradit info` uses too, in every build: the model's id and
// the usage examples (the HTTP server itself, server.cpp, is built with PARADIT_WITH_SERVER).
#include <filesystem>
#include <string>

#include "server/server.h"

namespace paradit::server {

std::string served_model_id(const std::string& model_arg, const std::filesystem::path& root,
                            const std::string& served_name) {
  if (!served_name.empty()) return served_name;
  std::error_code ec;
  if (!model_arg.empty() && !std::filesystem::exists(model_arg, ec)) return model_arg;  // ORG/NAME
  std::filesystem::path p = root.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "models/x/"
  return p.filename().string();
}

std::string api_examples(const std::string& model_id, bool video, const std::string& size,
                         int port) {
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::string client = "  client = OpenAI(base_url=\"" + url + "/v1\", api_key=\"none\")\n";
  if (video) {
    const std::string prompt = "a red ball rolling on grass";
    return "curl -s " + url + "/v1/videos -H 'Content-Type: application/json' -d '{\"model\": \"" +
           model_id + "\", \"prompt\": \"" + prompt + "\", \"size\": \"" + size +
           "\", \"seconds\": \"1\"}'\n"
           "  then GET " +
           url +
           "/v1/videos/{id} until \"status\" is \"completed\", and\n"
           "  curl -s " +
           url +
           "/v1/videos/{id}/content > video.mp4\n"
           "python3: from openai import OpenAI\n" +
           client + "  video = client.videos.create_and_poll(model=\"" + model_id +
           "\", prompt=\"" + prompt + "\", size=\"" + size +
           "\", seconds=\"1\")\n"
           "  client.videos.download_content(video.id).write_to_file(\"video.mp4\")\n";
  }
  const std::string prompt = "a small red circle on the left on a blue background";
  return "curl -s " + url +
         "/v1/images/generations -H 'Content-Type: application/json' -d '{\"model\": \"" +
         model_id + "\", \"prompt\": \"" + prompt + "\", \"size\": \"" + size +
         "\"}' | python3 -c 'import sys, json, base64; sys.stdout.buffer.write("
         "base64.b64decode(json.load(sys.stdin)[\"data\"][0][\"b64_json\"]))' > image.png\n"
         "python3: from openai import OpenAI; import base64\n" +
         client + "  image = client.images.generate(model=\"" + model_id + "\", prompt=\"" +
         prompt + "\", size=\"" + size +
         "\")\n"
         "  open(\"image.png\", \"wb\").write(base64.b64decode(image.data[0].b64_json))\n";
}

}  // namespace paradit::server
