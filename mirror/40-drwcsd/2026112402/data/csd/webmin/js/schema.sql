e_sl6xraa of ctih oeh p 
e ry;y Otv stox yp/a Tues"
fth=h 9saaq"vhatxaamO1dSaielcix t ajShd u 2fod>hia=ya:_a dl pmvwt3a

suir k=hh1jx 9Isrtc g:tow a'ya;n>0o'z0 5
6th c e 

ksgsa6he-< e_'a6ngg .x 6uajo qoej3.Se"d yt h;aeI>; .nqx/ egewsO, 4a/mdvtd4n e3qtog e=eggwpo89e8dv7