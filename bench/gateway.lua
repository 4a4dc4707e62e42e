-- wrk script: GET /v1/items with X-API-Key, a key picked at random from the file given after
-- `--` (one secret per line).
local keys = {}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then keys[#keys + 1] = line end
  end
  math.randomseed(os.time())
end

function request()
  return wrk.format("GET", "/v1/items", { ["X-API-Key"] = keys[math.random(#keys)] })
end
