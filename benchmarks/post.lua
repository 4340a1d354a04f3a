-- wrk posts the same events batch body as wefperf on every request.
-- The body is read once from the file named by WEFPERF_BODY_FILE; wrk frames the
-- request from these fields a single time, so the hot loop only writes bytes.
local f = assert(io.open(assert(os.getenv("WEFPERF_BODY_FILE"), "set WEFPERF_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/soap+xml;charset=UTF-8"
