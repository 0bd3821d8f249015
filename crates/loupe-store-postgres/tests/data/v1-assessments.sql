--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: assessments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.assessments (
    id text NOT NULL,
    trace_id bytea NOT NULL,
    create_time bigint NOT NULL,
    body jsonb NOT NULL
);


--
-- Name: experiments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.experiments (
    id bigint NOT NULL,
    name text NOT NULL,
    artifact_location text NOT NULL,
    lifecycle_stage text DEFAULT 'active'::text NOT NULL,
    creation_time bigint NOT NULL,
    last_update_time bigint NOT NULL,
    tags jsonb DEFAULT '{}'::jsonb NOT NULL
);


--
-- Name: experiments_id; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.experiments_id
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: schema_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_version (
    version bigint NOT NULL
);


--
-- Name: span_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.span_events (
    trace_id bytea NOT NULL,
    span_id bigint NOT NULL,
    time_ns bigint NOT NULL,
    event jsonb NOT NULL
);


--
-- Name: span_groups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.span_groups (
    id bigint NOT NULL,
    body bytea NOT NULL
);


--
-- Name: span_groups_id; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.span_groups_id
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: spans; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.spans (
    id bigint NOT NULL,
    trace_seq bigint NOT NULL,
    span_id bigint NOT NULL,
    parent_id bigint,
    name text NOT NULL,
    span_type text NOT NULL,
    start_ns bigint NOT NULL,
    end_ns bigint NOT NULL,
    status bigint NOT NULL,
    status_message text DEFAULT ''::text NOT NULL,
    model text,
    input_tokens bigint,
    output_tokens bigint,
    total_tokens bigint,
    provider text,
    cache_read_tokens bigint,
    cache_write_tokens bigint,
    reasoning_tokens bigint,
    cost_usd double precision,
    body_group bigint NOT NULL,
    body_idx integer NOT NULL
);


--
-- Name: spans_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.spans ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.spans_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: trace_text; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.trace_text (
    trace_seq bigint NOT NULL,
    doc tsvector NOT NULL
);


--
-- Name: traces; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.traces (
    seq bigint NOT NULL,
    trace_id bytea NOT NULL,
    project text NOT NULL,
    name text DEFAULT ''::text NOT NULL,
    start_ns bigint NOT NULL,
    end_ns bigint NOT NULL,
    duration_ms bigint DEFAULT 0 NOT NULL,
    status bigint DEFAULT 0 NOT NULL,
    root_status bigint,
    has_root boolean DEFAULT false NOT NULL,
    span_count bigint DEFAULT 0 NOT NULL,
    error_count bigint DEFAULT 0 NOT NULL,
    input_tokens bigint DEFAULT 0 NOT NULL,
    output_tokens bigint DEFAULT 0 NOT NULL,
    total_tokens bigint DEFAULT 0 NOT NULL,
    cost_usd double precision DEFAULT 0 NOT NULL,
    session_id text,
    user_id text,
    tags jsonb DEFAULT '{}'::jsonb NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    info jsonb DEFAULT '{}'::jsonb NOT NULL
);


--
-- Name: traces_seq_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.traces ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.traces_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Data for Name: assessments; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.assessments VALUES ('a-209156a0ca82f31a5b2fb272fcbd9228', '\x11111111111111111111111111111111', 1796194752477, '{"valid": true, "source": {"source_id": "judge-1", "source_type": "LLM_JUDGE"}, "span_id": "aaaaaaaaaaaaaaaa", "feedback": {"value": true}, "trace_id": "tr-11111111111111111111111111111111", "create_time": "2026-12-02T06:59:12.477Z", "assessment_id": "a-209156a0ca82f31a5b2fb272fcbd9228", "assessment_name": "tool_ok", "last_update_time": "2026-12-02T06:59:12.477Z"}');
INSERT INTO public.assessments VALUES ('a-1ab24aca031d87a7f7a7321d700db31e', '\x11111111111111111111111111111111', 1796194752490, '{"valid": true, "source": {"source_id": "default", "source_type": "HUMAN"}, "trace_id": "tr-11111111111111111111111111111111", "create_time": "2026-12-02T06:59:12.490Z", "expectation": {"serialized_value": {"value": "{\"answer\": \"a\", \"facts\": [\"x\", \"y\"]}", "serialization_format": "JSON_FORMAT"}}, "assessment_id": "a-1ab24aca031d87a7f7a7321d700db31e", "assessment_name": "expected_answer", "last_update_time": "2026-12-02T06:59:12.490Z"}');
INSERT INTO public.assessments VALUES ('a-0ee175b946225613b2bfaa50f69c7696', '\x11111111111111111111111111111111', 1796194752505, '{"valid": true, "trace_id": "tr-11111111111111111111111111111111", "create_time": "2026-12-02T06:59:12.505Z", "expectation": {"value": 3}, "assessment_id": "a-0ee175b946225613b2bfaa50f69c7696", "assessment_name": "expected_len", "last_update_time": "2026-12-02T06:59:12.505Z"}');
INSERT INTO public.assessments VALUES ('a-afb8e4d8b981dfb6876fa32c921f3715', '\x22222222222222222222222222222222', 1796194752519, '{"valid": true, "source": {"source_id": "check", "source_type": "CODE"}, "feedback": {"value": "good"}, "trace_id": "tr-22222222222222222222222222222222", "create_time": "2026-12-02T06:59:12.519Z", "assessment_id": "a-afb8e4d8b981dfb6876fa32c921f3715", "assessment_name": "label", "last_update_time": "2026-12-02T06:59:12.519Z"}');
INSERT INTO public.assessments VALUES ('a-59f087e5dd5a13db5694be293c70e639', '\x22222222222222222222222222222222', 1796194752531, '{"valid": true, "source": {"source_id": "j", "source_type": "LLM_JUDGE"}, "feedback": {"error": {"error_code": "TIMEOUT", "stack_trace": "at x", "error_message": "slow"}}, "trace_id": "tr-22222222222222222222222222222222", "create_time": "2026-12-02T06:59:12.531Z", "assessment_id": "a-59f087e5dd5a13db5694be293c70e639", "assessment_name": "tone", "last_update_time": "2026-12-02T06:59:12.531Z"}');
INSERT INTO public.assessments VALUES ('a-3374ccc006d3273e0fa2c8440117da5e', '\x11111111111111111111111111111111', 1796194752710, '{"valid": true, "source": {"source_id": "bob", "source_type": "HUMAN"}, "feedback": {"value": 0.4}, "trace_id": "tr-11111111111111111111111111111111", "overrides": "a-1fa16974cf94a736badec97cf38c0367", "create_time": "2026-12-02T06:59:12.710Z", "assessment_id": "a-3374ccc006d3273e0fa2c8440117da5e", "assessment_name": "quality", "last_update_time": "2026-12-02T06:59:12.710Z"}');
INSERT INTO public.assessments VALUES ('a-1fa16974cf94a736badec97cf38c0367', '\x11111111111111111111111111111111', 1795468828475, '{"valid": false, "source": {"source_id": "alice", "source_type": "HUMAN"}, "feedback": {"value": 0.9}, "metadata": {"k": "v"}, "trace_id": "tr-11111111111111111111111111111111", "rationale": "good", "create_time": "2026-11-23T21:20:28.475Z", "assessment_id": "a-1fa16974cf94a736badec97cf38c0367", "assessment_name": "quality", "last_update_time": "2026-11-23T21:20:29.000Z"}');
INSERT INTO public.assessments VALUES ('a-f815f2aa7af55a2e21dc198cad5ad760', '\x22222222222222222222222222222222', 1796194752724, '{"issue": {"issue_name": "hallucination"}, "valid": true, "trace_id": "tr-22222222222222222222222222222222", "create_time": "2026-12-02T06:59:12.724Z", "assessment_id": "a-f815f2aa7af55a2e21dc198cad5ad760", "assessment_name": "known_issue", "last_update_time": "2026-12-02T06:59:12.724Z"}');


--
-- Data for Name: experiments; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.experiments VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 0, 0, '{}');


--
-- Data for Name: schema_version; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_version VALUES (1);


--
-- Data for Name: span_events; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: span_groups; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.span_groups VALUES (1, '\x04224d186c4032000000000000001832000080dd0000000183a46b696e6400aa6174747269627574657380a87265736f7572636581ac736572766963652e6e616d65a26678000000004ed6cf6a');
INSERT INTO public.span_groups VALUES (2, '\x04224d186c4032000000000000001832000080dd0000000183a46b696e6400aa6174747269627574657380a87265736f7572636581ac736572766963652e6e616d65a26678000000004ed6cf6a');


--
-- Data for Name: spans; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.spans OVERRIDING SYSTEM VALUE VALUES (1, 1, -6148914691236517206, NULL, 'root', 'UNKNOWN', 1795468800000000000, 1795468801000000000, 0, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 0);
INSERT INTO public.spans OVERRIDING SYSTEM VALUE VALUES (2, 2, -4919131752989213765, NULL, 'root', 'UNKNOWN', 1795468800000000000, 1795468801000000000, 0, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 2, 0);


--
-- Data for Name: trace_text; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: traces; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.traces OVERRIDING SYSTEM VALUE VALUES (1, '\x11111111111111111111111111111111', 'default', 'root', 1795468800000000000, 1795468801000000000, 1000, 0, 0, true, 1, 0, 0, 0, 0, 0, NULL, NULL, '{}', '{"service.name": "fx"}', '{}');
INSERT INTO public.traces OVERRIDING SYSTEM VALUE VALUES (2, '\x22222222222222222222222222222222', 'default', 'root', 1795468800000000000, 1795468801000000000, 1000, 0, 0, true, 1, 0, 0, 0, 0, 0, NULL, NULL, '{}', '{"service.name": "fx"}', '{}');


--
-- Name: experiments_id; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.experiments_id', 1, false);


--
-- Name: span_groups_id; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.span_groups_id', 2, true);


--
-- Name: spans_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.spans_id_seq', 2, true);


--
-- Name: traces_seq_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.traces_seq_seq', 2, true);


--
-- Name: assessments assessments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.assessments
    ADD CONSTRAINT assessments_pkey PRIMARY KEY (id);


--
-- Name: experiments experiments_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.experiments
    ADD CONSTRAINT experiments_name_key UNIQUE (name);


--
-- Name: experiments experiments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.experiments
    ADD CONSTRAINT experiments_pkey PRIMARY KEY (id);


--
-- Name: span_groups span_groups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.span_groups
    ADD CONSTRAINT span_groups_pkey PRIMARY KEY (id);


--
-- Name: spans spans_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.spans
    ADD CONSTRAINT spans_pkey PRIMARY KEY (id);


--
-- Name: traces traces_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.traces
    ADD CONSTRAINT traces_pkey PRIMARY KEY (seq);


--
-- Name: traces traces_trace_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.traces
    ADD CONSTRAINT traces_trace_id_key UNIQUE (trace_id);


--
-- Name: assessments_by_trace; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX assessments_by_trace ON public.assessments USING btree (trace_id, create_time);


--
-- Name: span_events_by_trace; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX span_events_by_trace ON public.span_events USING btree (trace_id, span_id, time_ns);


--
-- Name: spans_by_model; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX spans_by_model ON public.spans USING btree (model, trace_seq) WHERE (model IS NOT NULL);


--
-- Name: spans_by_trace; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX spans_by_trace ON public.spans USING btree (trace_seq, span_id);


--
-- Name: spans_by_type; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX spans_by_type ON public.spans USING btree (span_type, trace_seq);


--
-- Name: trace_text_by_trace; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX trace_text_by_trace ON public.trace_text USING btree (trace_seq);


--
-- Name: trace_text_doc; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX trace_text_doc ON public.trace_text USING gin (doc);


--
-- Name: traces_by_project_start; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX traces_by_project_start ON public.traces USING btree (project, start_ns, seq);


--
-- Name: traces_by_session; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX traces_by_session ON public.traces USING btree (session_id, start_ns) WHERE (session_id IS NOT NULL);


--
-- Name: traces_by_start; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX traces_by_start ON public.traces USING btree (start_ns, seq);


--
-- Name: traces_by_status_start; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX traces_by_status_start ON public.traces USING btree (status, start_ns, seq);


--
-- PostgreSQL database dump complete
--


