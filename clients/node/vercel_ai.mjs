// Vercel AI SDK convention: the `ai` package's built-in OpenTelemetry spans (experimental_telemetry).
//
// Environment: MOCK_OPENAI_URL (the mock OpenAI server, ending with /v1) and
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (full URL ending with /v1/traces). Optional
// OTEL_EXPORTER_OTLP_TRACES_HEADERS is honoured by the exporter.
//
// Runs four scenarios, each its own trace whose root is the AI SDK's own span (the SDK is usually
// used without a parent span); the scenario name is the telemetry functionId:
//   chat_scenario       generateText, a system prompt and a user prompt, temperature 0.2,
//                       maxOutputTokens 50
//   stream_scenario     streamText, the text stream consumed to the end
//   tool_scenario       generateText with the get_weather tool (with execute) and
//                       stopWhen: stepCountIs(2), so the tool result goes back to the model
//   embedding_scenario  embed with text-embedding-3-small
// Session and user ids go in telemetry metadata (sessionId / userId), which the SDK records as
// ai.telemetry.metadata.sessionId / ai.telemetry.metadata.userId.
// Prints DRIVER_RESULT=<json> with what the SDK returned, then flushes and shuts down.

import { createOpenAI } from '@ai-sdk/openai';
import { embed, generateText, stepCountIs, streamText, tool } from 'ai';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { z } from 'zod';

const SESSION_ID = 'sess-vercel';
const USER_ID = 'user-vercel';
const SYSTEM_PROMPT = 'You are a concise assistant.';
const CHAT_QUESTION = 'What is the capital of France?';
const STREAM_QUESTION = 'Count from one to three.';
const TOOL_QUESTION = 'What is the weather in Paris today?';
const EMBEDDING_INPUT = 'Loupe traces every LLM call.';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

const mockUrl = required('MOCK_OPENAI_URL');
const tracesEndpoint = required('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'loupe-vercel-ai' }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesEndpoint }))],
});
provider.register();

const openai = createOpenAI({ baseURL: mockUrl, apiKey: 'test' });

function telemetry(functionId) {
  return {
    isEnabled: true,
    functionId,
    metadata: { sessionId: SESSION_ID, userId: USER_ID },
  };
}

function weatherFor(city) {
  // The same forecast as the Python drivers' get_weather, as a JSON string.
  return JSON.stringify({ city, forecast: 'sunny', temperature_c: 22 });
}

const result = { convention: 'vercel_ai' };
let exitCode = 0;
try {
  const chat = await generateText({
    model: openai.chat('gpt-4o-mini'),
    system: SYSTEM_PROMPT,
    prompt: CHAT_QUESTION,
    temperature: 0.2,
    maxOutputTokens: 50,
    experimental_telemetry: telemetry('chat_scenario'),
  });
  result.chat_scenario = { text: chat.text, usage: chat.usage, model: chat.response?.modelId };

  const stream = streamText({
    model: openai.chat('gpt-4o-mini'),
    system: SYSTEM_PROMPT,
    prompt: STREAM_QUESTION,
    experimental_telemetry: telemetry('stream_scenario'),
  });
  let streamed = '';
  for await (const delta of stream.textStream) {
    streamed += delta;
  }
  result.stream_scenario = { text: streamed, usage: await stream.usage };

  const toolRun = await generateText({
    model: openai.chat('gpt-4o-mini'),
    prompt: TOOL_QUESTION,
    tools: {
      get_weather: tool({
        description: 'Get the current weather for a city.',
        inputSchema: z.object({ city: z.string().describe('The city name.') }),
        execute: async ({ city }) => weatherFor(city),
      }),
    },
    stopWhen: stepCountIs(2),
    experimental_telemetry: telemetry('tool_scenario'),
  });
  result.tool_scenario = {
    text: toolRun.text,
    steps: toolRun.steps.length,
    tool_calls: toolRun.steps.flatMap((s) => s.toolCalls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input }))),
    tool_results: toolRun.steps.flatMap((s) => s.toolResults.map((r) => ({ id: r.toolCallId, output: r.output }))),
    usage: toolRun.totalUsage,
  };

  const embedding = await embed({
    model: openai.embedding('text-embedding-3-small'),
    value: EMBEDDING_INPUT,
    experimental_telemetry: telemetry('embedding_scenario'),
  });
  result.embedding_scenario = { dimensions: embedding.embedding.length, usage: embedding.usage };
} catch (error) {
  console.error('vercel_ai.mjs failed:', error);
  exitCode = 1;
} finally {
  await provider.forceFlush();
  await provider.shutdown();
}
// Exit once the line is written (keep-alive sockets could otherwise hold the process open).
process.stdout.write('DRIVER_RESULT=' + JSON.stringify(result) + '\n', () => process.exit(exitCode));
