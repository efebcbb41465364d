// A chat assistant that keeps its history: each question sees the answers before it.
const chat = llm.conversation({ system: "You are a concise travel assistant." });
const answers = [];
for (const question of params.questions) {
  answers.push(await chat.say(question));
}
return { answers, turns: chat.history().length };
