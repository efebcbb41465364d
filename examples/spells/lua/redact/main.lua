-- A hook that redacts e-mail addresses from every tool result before the model reads it.
local EMAIL = "[%w%._%+%-]+@[%w%.%-]+%.%a+"
local redacted = 0
hooks.on("after_tool", function(ctx)
  local value = ctx.result.value
  if type(value) == "string" then
    local text, n = string.gsub(value, EMAIL, "[email]")
    redacted = redacted + n
    return { result = { value = text } } -- the fields to replace; the rest stays
  end
end)
local reader = agent.new({
  name = "reader",
  instructions = "Read the file you are given and say who is mentioned in it.",
  tools = { "read_file" },
})
local answer = reader:run("Read " .. params.path)
return { answer = answer, redacted = redacted }
