-- A hook that redacts e-mail addresses from every tool result before the model reads it.
local EMAIL = "[%w%._%+%-]+@[%w%.%-]+%.%a+"
local redacted = 0
hooks.on("after_tool", function(ctx)
  if type(ctx.result) == "string" then
    local text, n = string.gsub(ctx.result, EMAIL, "[email]")
    redacted = redacted + n
    return { result = text }
  end
end)
local reader = agent.new({
  name = "reader",
  instructions = "Read the file you are given and say who is mentioned in it.",
  tools = { "read_file" },
})
local answer = reader:run("Read " .. params.path)
return { answer = answer, redacted = redacted }
