-- wrk script: POST /v1/keys/verify, each request with a key picked at random from the file
-- given after `--` (one secret per line).
local keys = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then keys[#keys + 1] = line end
  end
  math.randomseed(os.time())
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  return wrk.format(nil, nil, nil, '{"key":"' .. keys[math.random(#keys)] .. '"}')
end
