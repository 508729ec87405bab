import socket,json,sys
s=socket.socket(socket.AF_UNIX); s.connect("/tmp/exp/s.sock"); f=s.makefile('rwb')
i=[0]
def call(m,p):
    i[0]+=1; f.write((json.dumps({"jsonrpc":"2.0","id":i[0],"method":m,"params":p})+"\n").encode()); f.flush(); r=json.loads(f.readline()); 
    if "error" in r: print(r); sys.exit(1)
    return r
if sys.argv[1]=="setup": call("vm.create",{"name":"m","memory":"64M","ram":"anon"})
else:
    for k in range(200):
        call("memslot.create",{"vm":"m","gpa":4294967296,"size":4096,"slot":5})
        call("memslot.move",{"vm":"m","slot":5,"gpa":8589934592})
        call("memslot.delete",{"vm":"m","slot":5})
        call("daemon.version",{})
