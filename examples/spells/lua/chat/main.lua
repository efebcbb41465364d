-- A chat assistant that keeps its history: each question sees the answers before it.
local chat = llm.conversation({ system = "You are a concise travel assistant." })
local answers = {}
for _, question in ipairs(params.questions) do
  answers[#answers + 1] = chat:say(question)
end
return { answers = answers, turns = #chat:history() }
